"""schemathesis hooks for Rulebook's API, loaded by scripts/schemathesis (SCHEMATHESIS_HOOKS).

`POST /v1/rules/import` also takes `application/x-ndjson`: one rule document a line, documented
as a string. schemathesis has no serializer for that media type, so its generated bodies are sent
as text: a string as it is (UTF-8, with unencodable characters replaced), bytes as they are, and
anything else as one JSON document a line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: schemathesis.SerializationContext, value: object) -> dict[str, bytes]:
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8", "replace")}
    items = value if isinstance(value, list) else [value]
    return {"data": "".join(json.dumps(item) + "\n" for item in items).encode()}
