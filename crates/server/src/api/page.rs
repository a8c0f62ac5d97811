//! Pages of a listing: `limit` and an opaque `cursor`, shared by every listing that pages.
//!
//! A cursor names the sort key of the last item of the page it came with (not an offset), so a
//! page starts right after that key however many items were written or removed before it in the
//! meantime: paging through a listing while others write returns every item that was there the
//! whole time exactly once, and items written meanwhile at most once. The cursor is the key as
//! JSON, base64url-encoded; clients pass it back unchanged and must not build one.

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

/// How many items a page holds when the request gives no `limit`.
pub const DEFAULT_LIMIT: usize = 1000;
/// The most items a page may hold.
pub const MAX_LIMIT: usize = 10_000;

const ENCODING: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The page size a request asked for: `limit` when 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when
/// absent. Anything else is 400 `bad_limit`.
pub fn limit(limit: Option<usize>, what: &str) -> Result<usize, ApiError> {
    limit_within(limit, DEFAULT_LIMIT, MAX_LIMIT, what)
}

/// [`limit`] for a listing with its own default and largest page (`what` names its items).
pub fn limit_within(
    limit: Option<usize>,
    default: usize,
    max: usize,
    what: &str,
) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "bad_limit",
            format!(
                "`limit` is {n}: ask for 1 to {max} {what} a page, and page on with `next_cursor`"
            ),
        )),
    }
}

/// The sort key a request's `cursor` names. A cursor this server did not give is 400
/// `bad_cursor`.
pub fn after<K: DeserializeOwned>(cursor: Option<&str>) -> Result<Option<K>, ApiError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    ENCODING
        .decode(cursor)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_cursor",
                format!("`cursor` `{cursor}` is not one this server gave: pass the `next_cursor` of the previous page unchanged, or leave `cursor` out to start from the first page"),
            )
        })
}

/// The cursor naming `key`.
pub fn cursor<K: Serialize>(key: &K) -> String {
    ENCODING.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// One page of `items`, which are sorted by `key`: the first `limit` items whose key is above
/// `after`, and the cursor of the next page when more follow.
pub fn page<'a, T, K: Ord + Serialize>(
    items: &'a [T],
    key: impl Fn(&T) -> K,
    after: Option<&K>,
    limit: usize,
) -> (&'a [T], Option<String>) {
    let start = after.map_or(0, |after| items.partition_point(|item| key(item) <= *after));
    let rest = &items[start..];
    let taken = &rest[..limit.min(rest.len())];
    let next = (rest.len() > taken.len())
        .then(|| taken.last().map(|last| cursor(&key(last))))
        .flatten();
    (taken, next)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pages_follow_the_key_not_the_position() {
        let items: Vec<u32> = (0..25).map(|n| n * 2).collect();
        let (first, next) = page(&items, |n| *n, None, 10);
        assert_eq!(first, &items[..10]);
        let next: u32 = after(next.as_deref()).unwrap().unwrap();
        assert_eq!(next, 18);
        // An item removed before the cursor and one added before it move nothing after it.
        let mut changed = items.clone();
        changed.retain(|n| *n != 4);
        changed.insert(0, 1);
        changed.sort();
        let (second, _) = page(&changed, |n| *n, Some(&next), 10);
        assert_eq!(second, &items[10..20]);
        let (last, end) = page(&items, |n| *n, Some(&46), 10);
        assert_eq!((last, end), (&[48][..], None));
    }

    #[test]
    fn a_cursor_not_given_by_the_server_and_a_bad_limit_are_refused() {
        assert_eq!(
            after::<u32>(Some("not a cursor")).unwrap_err().code(),
            "bad_cursor"
        );
        assert_eq!(limit(Some(0), "rules").unwrap_err().code(), "bad_limit");
        assert_eq!(
            limit(Some(MAX_LIMIT + 1), "rules").unwrap_err().code(),
            "bad_limit"
        );
        assert_eq!(limit(None, "rules").unwrap(), DEFAULT_LIMIT);
    }
}
