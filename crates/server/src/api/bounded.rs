//! Request bodies read as the bytes arrive, within a bound: [`read_lines`] for a streamed import
//! (`application/x-ndjson`, one JSON document a line, too large to be one JSON value under the
//! normal body limit) and [`read_all`] for a whole body.
//!
//! **Bounded.** Each bound is a 413 naming the limit (also as data, `limit`) and the setting that
//! raises it: the whole body (for an import `--import-body-limit`, counted as the bytes arrive,
//! and checked against a declared `Content-Length` before anything is read), and each line
//! (`--body-limit`: one rule of an import is at most what one rule's own write may send). Only
//! the current line is buffered; the caller turns each line into what it keeps (a checked rule)
//! and drops the bytes.
//!
//! **A 413 that arrives.** A server that answers before it has read the request and then closes
//! the connection makes the client's kernel discard the answer (the unread bytes turn the close
//! into a reset), and the client reports a broken connection instead of the limit: the cause is
//! lost. So before a 413 is sent, the rest of the body is read and thrown away, for at most
//! [`DRAIN_FOR`]: long enough for any client on a reasonable link, short enough that a client
//! cannot hold the connection.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use futures_util::StreamExt as _;

use crate::error::ApiError;

/// The media type of a streamed import: one JSON document a line.
pub const NDJSON: &str = "application/x-ndjson";

/// How long the rest of a refused body is read (and discarded) before a 413 is sent.
pub const DRAIN_FOR: Duration = Duration::from_secs(5);

/// Whether the request's `Content-Type` is [`NDJSON`] (parameters such as `charset` aside).
pub fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(NDJSON))
}

/// The bounds of one streamed body, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The whole body (`--import-body-limit`).
    pub body: usize,
    /// One line (`--body-limit`).
    pub line: usize,
}

/// Reads `body` a line at a time and calls `each(i, line)` for line `i` (from 0) with its bytes,
/// without the line end (`\n` or `\r\n`); lines of only white space are skipped but counted, so
/// `i` is always the line number less one. Returns the bytes read.
///
/// # Errors
///
/// 413 `import_too_large` over `bounds.body`, 413 `line_too_large` for a line over `bounds.line`
/// (both after the rest of the body is drained, see the module docs), 400 `unreadable_body` if
/// the body breaks off.
pub async fn read_lines(
    headers: &HeaderMap,
    body: Body,
    bounds: Bounds,
    mut each: impl FnMut(usize, &[u8]),
) -> Result<u64, ApiError> {
    let mut stream = body.into_data_stream();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body_limit = bounds.body as u64;
    if let Some(size) = declared.filter(|size| *size > body_limit) {
        drain(&mut stream).await;
        return Err(too_large(Some(size), bounds.body));
    }
    let mut read: u64 = 0;
    let mut line: Vec<u8> = Vec::new();
    let mut index = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| broke_off(read, &e))?;
        read += chunk.len() as u64;
        if read > body_limit {
            let rest = drain(&mut stream).await;
            return Err(too_large(rest.map(|rest| read + rest), bounds.body));
        }
        let mut rest = &chunk[..];
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = rest.split_at(end);
            if line.len() + head.len() > bounds.line {
                drain(&mut stream).await;
                return Err(line_too_large(index, bounds.line));
            }
            if line.is_empty() {
                take(index, head, &mut each);
            } else {
                line.extend_from_slice(head);
                take(index, &line, &mut each);
                line.clear();
            }
            index += 1;
            rest = &tail[1..];
        }
        if line.len() + rest.len() > bounds.line {
            drain(&mut stream).await;
            return Err(line_too_large(index, bounds.line));
        }
        line.extend_from_slice(rest);
    }
    take(index, &line, &mut each);
    Ok(read)
}

/// Hands line `index` to `each`, without its `\r` and unless it is blank.
fn take(index: usize, line: &[u8], each: &mut impl FnMut(usize, &[u8])) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.trim_ascii().is_empty() {
        each(index, line);
    }
}

/// Reads the whole of `body` into `into`, within `limit` bytes.
///
/// # Errors
///
/// 413 `body_too_large` over `limit` (after the rest of the body is drained), 400
/// `unreadable_body` if the body breaks off.
pub async fn read_all(body: Body, limit: usize, into: &mut Vec<u8>) -> Result<(), ApiError> {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| broke_off(into.len() as u64, &e))?;
        if into.len() + chunk.len() > limit {
            drain(&mut stream).await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body is larger than the server's limit of {limit} bytes ({}): \
                     send less, or raise the server's --body-limit (RULEBOOK_BODY_LIMIT); an \
                     import may be streamed instead, as `Content-Type: {NDJSON}` under its own \
                     limit",
                    human(limit as u64)
                ),
            )
            .with_limit(limit as u64));
        }
        into.extend_from_slice(&chunk);
    }
    Ok(())
}

fn broke_off(read: u64, e: &axum::Error) -> ApiError {
    ApiError::bad_request(
        "unreadable_body",
        format!("the request body broke off after {read} bytes ({e}); send it again"),
    )
}

/// Reads and discards the rest of a refused body, for at most [`DRAIN_FOR`]. Returns the bytes
/// read when the body ended in that time.
async fn drain<S, E>(stream: &mut S) -> Option<u64>
where
    S: futures_util::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
{
    let mut read = 0u64;
    let deadline = tokio::time::Instant::now() + DRAIN_FOR;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len() as u64,
            Ok(None) => return Some(read),
            Ok(Some(Err(_))) | Err(_) => return None,
        }
    }
}

/// 413 `import_too_large`: `size` bytes (when known) over `limit`.
pub fn too_large(size: Option<u64>, limit: usize) -> ApiError {
    let what = match size {
        Some(size) => format!(
            "the import is {size} bytes, {} bytes over",
            size.saturating_sub(limit as u64)
        ),
        None => "the import is larger than".to_owned(),
    };
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "import_too_large",
        format!(
            "{what} the server's import limit of {limit} bytes ({}): raise the server's \
             --import-body-limit (RULEBOOK_IMPORT_BODY_LIMIT), or split the import",
            human(limit as u64)
        ),
    )
    .with_limit(limit as u64)
}

/// 413 `line_too_large`: line `index` (from 0) is over `limit`.
fn line_too_large(index: usize, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "line_too_large",
        format!(
            "line {} (`rules[{index}]`) is longer than the server's limit for one rule of {limit} \
             bytes ({}): shorten that rule, or raise the server's --body-limit (RULEBOOK_BODY_LIMIT)",
            index + 1,
            human(limit as u64)
        ),
    )
    .with_limit(limit as u64)
}

/// `bytes` as people write sizes: `256 MiB`, `512 KiB`, `100 bytes`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if bytes % size == 0 {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn lines(chunks: &[&str], bounds: Bounds) -> Result<Vec<(usize, String)>, ApiError> {
        let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(axum::body::Bytes::from(c.to_string())))
            .collect();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let mut seen = Vec::new();
        read_lines(&HeaderMap::new(), body, bounds, |i, line| {
            seen.push((i, String::from_utf8(line.to_vec()).unwrap()))
        })
        .await?;
        Ok(seen)
    }

    const WIDE: Bounds = Bounds {
        body: 1000,
        line: 100,
    };

    #[tokio::test]
    async fn lines_are_split_across_chunks_and_numbered_from_zero() {
        let seen = lines(&["{\"a\"", ":1}\n\n  \r\n{\"b\":2}\r", "\n{\"c\":3}"], WIDE)
            .await
            .unwrap();
        assert_eq!(
            seen,
            [
                (0, "{\"a\":1}".to_owned()),
                (3, "{\"b\":2}".to_owned()),
                (4, "{\"c\":3}".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_413_naming_the_limit() {
        let bounds = Bounds {
            body: 10,
            line: 100,
        };
        let e = lines(&["{\"a\":1}\n", "{\"b\":2}\n"], bounds)
            .await
            .unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (413, "import_too_large"));
        assert!(
            e.message().contains("16 bytes, 6 bytes over"),
            "{}",
            e.message()
        );
        assert!(
            e.message().contains("--import-body-limit"),
            "{}",
            e.message()
        );
    }

    #[tokio::test]
    async fn a_line_over_its_limit_is_413_naming_the_line() {
        let bounds = Bounds {
            body: 1000,
            line: 8,
        };
        let e = lines(&["{\"a\":1}\n{\"b\":", "22222}\n"], bounds)
            .await
            .unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (413, "line_too_large"));
        assert!(
            e.message().contains("line 2 (`rules[1]`)"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(256 << 20), "256 MiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(10), "10 bytes");
    }
}
