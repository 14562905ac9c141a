"""The server's own OpenAPI document, written from the catalogue.

It has the official paths and schemas of the usage and costs endpoints, plus the
ingestion endpoint that only this server has.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..catalogue import ENDPOINTS, USAGE_ENDPOINTS, Dimension, Endpoint

_NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}
_NULLABLE_BOOLEAN = {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
_ERROR = {"$ref": "#/components/responses/Error"}
QUANTITY_UNITS = (
    "tokens",
    "1000_tokens",
    "duration_seconds",
    "duration_minutes",
    "duration_hours",
    "gibibyte_hours",
    "images",
    "characters",
)


def _dimension_schema(d: Dimension) -> dict[str, Any]:
    return _NULLABLE_BOOLEAN if d.type == "boolean" else _NULLABLE_STRING


def _result_schema(endpoint: Endpoint) -> dict[str, Any]:
    properties: dict[str, Any] = {"object": {"type": "string", "enum": [endpoint.result_object]}}
    if endpoint.is_costs:
        properties["amount"] = {
            "type": "object",
            "properties": {"value": {"type": "number"}, "currency": {"type": "string"}},
            "required": ["value", "currency"],
        }
        properties["quantity"] = {"anyOf": [{"type": "number"}, {"type": "null"}]}
        properties["quantity_unit"] = {
            "anyOf": [{"type": "string", "enum": list(QUANTITY_UNITS)}, {"type": "null"}]
        }
    for m in endpoint.metrics:
        properties[m.name] = {"type": "integer", "minimum": 0}
    for d in endpoint.result_dimensions:
        properties[d.name] = _dimension_schema(d)
    return {"type": "object", "properties": properties, "required": list(properties)}


def _array_parameter(name: str, description: str, values: tuple[str, ...] | None) -> dict[str, Any]:
    items: dict[str, Any] = {"type": "string", "maxLength": 256}
    if values:
        items["enum"] = list(values)
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "array", "items": items},
    }


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": "start_time", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 0}},
        {"name": "end_time", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
        {
            "name": "bucket_width",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": list(endpoint.widths), "default": endpoint.default_width},
        },
    ]
    for name, d in endpoint.filters.items():
        if d.type == "boolean":
            params.append({"name": name, "in": "query", "required": False, "schema": {"type": "boolean"}})
        else:
            params.append(
                _array_parameter(name, f"Return only results with these {d.name} values.", d.values)
            )
    params.append(_array_parameter("group_by", "Group the results by these fields.", endpoint.group_fields))
    maximum = max(limit.maximum for limit in endpoint.limits.values())
    params.append(
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
        }
    )
    params.append({"name": "page", "in": "query", "required": False, "schema": {"type": "string"}})
    return params


def _event_schema(endpoint: Endpoint) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "type": {"type": "string", "enum": [endpoint.name]},
        "timestamp": {"anyOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]},
    }
    for d in endpoint.dimensions:
        schema = dict(_dimension_schema(d))
        if d.values:
            schema = {"anyOf": [{"type": "string", "enum": list(d.values)}, {"type": "null"}]}
        properties[d.name] = schema
    for m in endpoint.metrics:
        properties[m.name] = {"type": "integer", "minimum": 0, "maximum": m.maximum}
    required = ["id", "type", "timestamp", *(d.name for d in endpoint.dimensions if d.required)]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def openapi_document() -> dict[str, Any]:
    """The whole document: every endpoint of the catalogue and the ingestion endpoint."""
    endpoints = ENDPOINTS
    schemas: dict[str, Any] = {e.schema_name: _result_schema(e) for e in endpoints}
    schemas["UsageTimeBucket"] = {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["bucket"]},
            "start_time": {"type": "integer"},
            "end_time": {"type": "integer"},
            "results": {
                "type": "array",
                "items": {"oneOf": [{"$ref": f"#/components/schemas/{e.schema_name}"} for e in endpoints]},
            },
        },
        "required": ["object", "start_time", "end_time", "results"],
    }
    schemas["UsageResponse"] = {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["page"]},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/UsageTimeBucket"}},
            "has_more": {"type": "boolean"},
            "next_page": _NULLABLE_STRING,
        },
        "required": ["object", "data", "has_more", "next_page"],
    }
    schemas["Error"] = {
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": _NULLABLE_STRING,
            "code": _NULLABLE_STRING,
        },
        "required": ["type", "message", "param", "code"],
    }
    schemas["ErrorResponse"] = {
        "type": "object",
        "properties": {"error": {"$ref": "#/components/schemas/Error"}},
        "required": ["error"],
    }
    for e in USAGE_ENDPOINTS:
        schemas[f"{e.schema_name.removesuffix('Result')}Event"] = _event_schema(e)
    schemas["IngestResult"] = {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["usage.ingest_result"]},
            "received": {"type": "integer"},
            "inserted": {"type": "integer"},
            "duplicates": {"type": "integer"},
        },
        "required": ["object", "received", "inserted", "duplicates"],
    }

    error_responses = {str(status): _ERROR for status in (400, 401, 403, 429, 500)}
    paths: dict[str, Any] = {}
    for e in endpoints:
        paths[e.path] = {
            "get": {
                "operationId": e.method.replace("_", "-"),
                "summary": e.summary,
                "security": [{"AdminApiKeyAuth": []}],
                "parameters": _parameters(e),
                "responses": {
                    "200": {
                        "description": "One page of buckets.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/UsageResponse"}}
                        },
                    },
                    **error_responses,
                },
            }
        }
    event_refs = [
        {"$ref": f"#/components/schemas/{e.schema_name.removesuffix('Result')}Event"} for e in USAGE_ENDPOINTS
    ]
    paths["/organization/usage/events"] = {
        "post": {
            "operationId": "usage-events-ingest",
            "summary": "Record usage events (this server's own endpoint).",
            "security": [{"AdminApiKeyAuth": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "events": {"type": "array", "items": {"oneOf": event_refs}, "minItems": 1}
                            },
                            "required": ["events"],
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The batch is stored durably.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}
                    },
                },
                "413": _ERROR,
                "415": _ERROR,
                **error_responses,
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "openusage: organization Usage & Costs API", "version": __version__},
        "servers": [{"url": "/v1"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "An error.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
                    },
                }
            },
            "securitySchemes": {"AdminApiKeyAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
