"""The API's OpenAPI 3.1 schema (written out: it is small and says exactly what the handlers do)."""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_SID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(_ERROR, "Problem (nothing changed)") for code in codes}


_PROMPT = {"type": "object", "required": ["prompt"], "properties": {"prompt": {"type": "string"}}}

SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "remote-executors web API", "version": "1"},
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "rx_token"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "problems": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "index": {"type": ["integer", "null"]},
                                "entry": {},
                                "error": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "Executors": {"type": "array", "items": {"type": "string"}},
            "Session": {
                "type": "object",
                "properties": {
                    "session_id": {"type": "string"},
                    "title": {"type": "string"},
                    "cwd": {"type": "string"},
                    "executor": {"type": "string"},
                    "host": {"type": "string"},
                    "host_detail": {"type": "string"},
                    "updated": {"type": "string", "format": "date-time"},
                    "state": {"enum": ["running", "idle"]},
                    "marks": {"type": "array", "items": {"enum": ["sync failed", "conflict"]}},
                    "local_copy": {"type": "boolean"},
                },
            },
            "Run": {
                "type": ["object", "null"],
                "properties": {
                    "session_id": {"type": ["string", "null"]},
                    "state": {"enum": ["starting", "running", "idle", "ended", "failed"]},
                    "error": {"type": ["string", "null"]},
                    "executor": {"type": "string"},
                    "permissions": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Permission"},
                    },
                },
            },
            "Permission": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "tool": {"type": "string"},
                    "input": {"type": "object"},
                },
            },
        },
    },
    "security": [{"bearer": []}, {"cookie": []}],
    "paths": {
        "/api/settings/remote-executors": {
            "get": {
                "summary": "The configured executors",
                "responses": {"200": _json({"$ref": "#/components/schemas/Executors"})},
            },
            "put": {
                "summary": "Replace the configured executors (atomic, validated)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Executors"}}
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Executors"}),
                    **_errors(400, 413),
                },
            },
        },
        "/api/executors": {
            "get": {
                "summary": "Local plus the configured executors",
                "responses": {"200": _json({"type": "array"})},
            }
        },
        "/api/executors/{name}/check": {
            "post": {
                "summary": "Test connection: a JSON line per step as it ends, then {done, ok}",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"cwd": {"type": "string"}}}
                        }
                    }
                },
                "responses": {
                    "200": {"description": "Steps", "content": {"application/x-ndjson": {}}},
                    **_errors(400, 404),
                },
            }
        },
        "/api/executors/{name}/directories": {
            "get": {
                "summary": "A directory on the executor's machine (remote-executors ls), or "
                "with complete=1 the directories a partial path could be",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "path", "in": "query", "schema": {"type": "string"}},
                    {"name": "complete", "in": "query", "schema": {"type": "string"}},
                    {"name": "hidden", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _json({"type": "object"}), **_errors(400, 404, 502)},
            }
        },
        "/api/sessions": {
            "get": {
                "summary": "A project's sessions, newest first",
                "parameters": [{"name": "cwd", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "cwd": {"type": "string"},
                                "run_on": {"type": ["string", "null"]},
                                "sessions": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Session"},
                                },
                            },
                        }
                    ),
                    **_errors(400),
                },
            },
            "post": {
                "summary": "Start a session",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["prompt", "cwd", "executor"],
                                "properties": {
                                    "prompt": {"type": "string"},
                                    "cwd": {"type": "string"},
                                    "executor": {"type": "string"},
                                    "remote_cwd": {
                                        "type": "string",
                                        "description": "ssh executors: the directory on the "
                                        "host to run in (absolute, or relative to its home); "
                                        "default: the project's mapped path",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {"201": _json({"type": "object"}), **_errors(400, 404, 502, 503)},
            },
        },
        "/api/sessions/{session_id}": {
            "get": {
                "summary": "The transcript entries (newest 2000) and the offset to follow from",
                "parameters": [_SID],
                "responses": {"200": _json({"type": "object"}), **_errors(400, 403, 404)},
            }
        },
        "/api/sessions/{session_id}/events": {
            "get": {
                "summary": "Server-Sent Events: entries (id = offset), live, state",
                "parameters": [
                    _SID,
                    {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {
                    "200": {"description": "Event stream", "content": {"text/event-stream": {}}},
                    **_errors(400, 403, 404),
                },
            }
        },
        "/api/sessions/{session_id}/messages": {
            "post": {
                "summary": "Send the next turn (where the session last ran)",
                "parameters": [_SID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _PROMPT}},
                },
                "responses": {"202": _json({"type": "object"}), **_errors(400, 404, 409, 502)},
            }
        },
        "/api/sessions/{session_id}/interrupt": {
            "post": {
                "summary": "Interrupt the running turn",
                "parameters": [_SID],
                "responses": {"200": _json({"type": "object"}), **_errors(400, 409)},
            }
        },
        "/api/sessions/{session_id}/permissions": {
            "get": {
                "summary": "Permission prompts waiting for an answer",
                "parameters": [_SID],
                "responses": {
                    "200": _json(
                        {"type": "array", "items": {"$ref": "#/components/schemas/Permission"}}
                    )
                },
            }
        },
        "/api/sessions/{session_id}/permissions/{prompt_id}": {
            "post": {
                "summary": "Answer a permission prompt",
                "parameters": [
                    _SID,
                    {
                        "name": "prompt_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["decision"],
                                "properties": {
                                    "decision": {"enum": ["allow", "deny"]},
                                    "message": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": _json({"type": "object"}), **_errors(400, 404)},
            }
        },
    },
}
