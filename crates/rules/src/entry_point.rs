//! Entry-point keys and the one function that normalises them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest entry-point key accepted, in bytes after normalisation.
pub const MAX_ENTRY_POINT_LEN: usize = 128;

/// A normalised entry-point key such as `home_page_mount`.
///
/// The only way to make one is [`EntryPoint::parse`], so two keys that name the same entry point
/// (`Home Page Mount`, `home-page-mount`, `home_page_mount`) are always equal. Serde goes through
/// the same function: a rule file may say `entry_point: Checkout Terms`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPoint(String);

/// Why a text is not an entry-point key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryPointError {
    /// Nothing but whitespace, dashes or nothing at all.
    #[error("entry point `{input}` is empty; give it a name such as `checkout_terms`")]
    Empty {
        /// The text as given.
        input: String,
    },
    /// A character outside `[A-Za-z0-9_. -]` (checked before any case folding, so no
    /// non-ASCII letter can fold into an ASCII one).
    #[error(
        "entry point `{input}` has a character `{character}` outside [A-Za-z0-9_. -]; use ASCII \
         letters, digits, `_`, `.`, spaces or dashes"
    )]
    InvalidCharacter {
        /// The text as given.
        input: String,
        /// The first offending character, as given.
        character: char,
    },
    /// Longer than [`MAX_ENTRY_POINT_LEN`].
    #[error("entry point `{input}` is longer than {max} characters; shorten it", max = MAX_ENTRY_POINT_LEN)]
    TooLong {
        /// The text as given.
        input: String,
    },
}

impl EntryPoint {
    /// Normalises `raw` into an entry-point key: refuses any character outside `[A-Za-z0-9_. -]`
    /// (ASCII whitespace counts as a space) before anything else, so that no other character can
    /// fold into an ASCII letter; then trims, lower-cases, and turns every run of spaces and
    /// dashes into one `_`.
    ///
    /// ```
    /// use rulebook_rules::EntryPoint;
    /// let a = EntryPoint::parse("  Home Page - Mount ").unwrap();
    /// assert_eq!(a.as_str(), "home_page_mount");
    /// assert_eq!(a, EntryPoint::parse("home_page_mount").unwrap());
    /// assert!(EntryPoint::parse("Home Page!").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<EntryPoint, EntryPointError> {
        if let Some(character) = raw.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') || c.is_ascii_whitespace())
        }) {
            return Err(EntryPointError::InvalidCharacter {
                input: raw.to_owned(),
                character,
            });
        }
        let trimmed = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        let mut out = String::with_capacity(trimmed.len());
        let mut in_run = false;
        for c in trimmed.chars() {
            if c.is_ascii_whitespace() || c == '-' {
                if !in_run {
                    out.push('_');
                    in_run = true;
                }
                continue;
            }
            in_run = false;
            out.push(c.to_ascii_lowercase());
        }
        // A text of only dashes trims to itself and normalises to `_`; that names nothing.
        if out.is_empty() || out.chars().all(|c| c == '_') {
            return Err(EntryPointError::Empty {
                input: raw.to_owned(),
            });
        }
        if out.len() > MAX_ENTRY_POINT_LEN {
            return Err(EntryPointError::TooLong {
                input: raw.to_owned(),
            });
        }
        Ok(EntryPoint(out))
    }

    /// The normalised key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for EntryPoint {
    type Err = EntryPointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryPoint::parse(s)
    }
}

impl AsRef<str> for EntryPoint {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for EntryPoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntryPoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        EntryPoint::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn spaces_dashes_and_case_normalise_to_one_key() {
        for raw in [
            "Home Page Mount",
            "home_page_mount",
            "  HOME-PAGE-MOUNT\t",
            "home - page -- mount",
        ] {
            assert_eq!(
                EntryPoint::parse(raw).unwrap().as_str(),
                "home_page_mount",
                "{raw}"
            );
        }
    }

    #[test]
    fn dots_and_digits_are_kept() {
        assert_eq!(
            EntryPoint::parse("Cart v2.Checkout").unwrap().as_str(),
            "cart_v2.checkout"
        );
    }

    #[test]
    fn a_character_outside_the_alphabet_is_named() {
        let err = EntryPoint::parse("Home Page!").unwrap_err();
        assert_eq!(
            err,
            EntryPointError::InvalidCharacter {
                input: "Home Page!".into(),
                character: '!'
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("`Home Page!`") && message.contains("`!`"),
            "{message}"
        );
    }

    /// Regression: an entry point written with the Kelvin sign (U+212A) was lower-cased into `k`
    /// and silently became `key`, while every other non-ASCII letter was refused.
    #[test]
    fn entry_point_keys_never_alias_the_kelvin_sign_is_refused() {
        let err = EntryPoint::parse("\u{212A}ey").unwrap_err();
        assert_eq!(
            err,
            EntryPointError::InvalidCharacter {
                input: "\u{212A}ey".into(),
                character: '\u{212A}'
            }
        );
        // Every character whose lower case is ASCII, or that folds into a separator, is refused
        // unless it is ASCII itself.
        for c in (0x80..=0x10FFFF).filter_map(char::from_u32) {
            let folds_to_ascii = c.to_lowercase().any(|l| l.is_ascii());
            if folds_to_ascii || c.is_whitespace() {
                assert!(
                    EntryPoint::parse(&format!("a{c}b")).is_err(),
                    "U+{:04X}",
                    c as u32
                );
            }
        }
        assert!(EntryPoint::parse("caf\u{e9}").is_err());
    }

    #[test]
    fn empty_and_dash_only_keys_are_rejected() {
        for raw in ["", "   ", " - - "] {
            assert!(
                matches!(EntryPoint::parse(raw), Err(EntryPointError::Empty { .. })),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn over_long_keys_are_rejected() {
        let raw = "a".repeat(MAX_ENTRY_POINT_LEN + 1);
        assert!(matches!(
            EntryPoint::parse(&raw),
            Err(EntryPointError::TooLong { .. })
        ));
        assert!(EntryPoint::parse(&raw[1..]).is_ok());
    }

    #[test]
    fn serde_goes_through_the_normalising_function() {
        let ep: EntryPoint = serde_json::from_str("\"Checkout Terms\"").unwrap();
        assert_eq!(ep.as_str(), "checkout_terms");
        assert_eq!(serde_json::to_string(&ep).unwrap(), "\"checkout_terms\"");
        let err = serde_json::from_str::<EntryPoint>("\"checkout/terms\"").unwrap_err();
        assert!(err.to_string().contains("`/`"), "{err}");
    }
}
