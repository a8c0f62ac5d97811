//! OpenAPI schemas for the three types whose JSON is written by hand rather than derived (behind
//! the `utoipa` feature, which only the service turns on).
//!
//! Every other type the service sends or takes derives `utoipa::ToSchema` next to its serde
//! derives, behind the same feature: the schema is read from the very fields and serde
//! attributes that make the JSON, so the two cannot drift, and crates that use the rules engine
//! as a library pay nothing for it. [`EntryPoint`] and [`Action`] implement serde by hand, so
//! their schemas are written by hand here, next to nothing else, and say exactly what those
//! implementations accept. [`FiredAction`] also does (it shares its parts with the compiled
//! rule); its schema is derived from a struct with the fields it writes.

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use std::borrow::Cow;

use crate::{Action, EntryPoint, FiredAction};

impl PartialSchema for EntryPoint {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            // At least one character that survives normalisation; at most the normalised limit.
            .pattern(Some("^[A-Za-z0-9_. -]*[A-Za-z0-9_.][A-Za-z0-9_. -]*$"))
            .max_length(Some(crate::MAX_ENTRY_POINT_LEN))
            .description(Some(
                "An entry-point key such as `checkout_terms`. Accepted as written \
                 (`Checkout Terms`, `checkout-terms`) and normalised: trimmed, lower-cased, every \
                 run of spaces and dashes turned into one `_`; answered normalised.",
            ))
            .into()
    }
}

impl ToSchema for EntryPoint {}

impl PartialSchema for Action {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .description(Some(
                        "The action's type: `score` and `route` are Rulebook's (scorecards), \
                         every other name is the application's",
                    )),
            )
            .required("type")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some(
                "One action: its `type` and the application's own fields, kept as written; a \
                 field whose value is a JSONLogic operation is computed when the action fires",
            ))
            .into()
    }
}

impl ToSchema for Action {}

/// One action of a matched rule, with its expressions evaluated.
#[derive(serde::Serialize, ToSchema)]
// The JSON of a [`FiredAction`], for its schema only: never built, the derive reads its fields
// and their docs.
#[allow(dead_code)]
struct FiredActionFields {
    /// The rule the action belongs to.
    rule_id: String,
    /// The action with its computed fields (serialised inline:
    /// `{"rule_id": ..., "type": ..., ...fields}`).
    #[serde(flatten)]
    action: Action,
}

impl PartialSchema for FiredAction {
    fn schema() -> RefOr<Schema> {
        FiredActionFields::schema()
    }
}

impl ToSchema for FiredAction {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FiredAction")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        FiredActionFields::schemas(schemas);
    }
}
