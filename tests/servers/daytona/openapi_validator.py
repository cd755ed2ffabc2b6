"""Request and response validation against the official Daytona OpenAPI specs.

The test server runs every request through `Spec.match_and_validate` before it acts on it, and
(when asked) every JSON response it sends through `Spec.validate_response`. The specs are the
files in ../shared/specs (daytona-api.openapi.yaml for the REST API under /api,
daytona-toolbox.openapi.yaml for the toolbox under /toolbox/{sandboxId}).

What is checked for a request:
  * the path exists in the spec with that method (literal segments win over templated ones, so
    /sandbox/paginated is not taken for /sandbox/{sandboxIdOrName});
  * path, query and header parameters: required ones present, values coerced from their text
    form to the declared type (integer, number, boolean, array with explode=true form style) and
    then validated against the parameter's schema (enum, minimum, maximum, ...);
  * in strict mode (the default) query parameters the operation does not declare are rejected;
  * a JSON request body: present when `required`, Content-Type one the operation declares, valid
    JSON, and valid against its schema (required fields, types, enums, additionalProperties);
  * in strict mode, objects whose schema lists `properties` but says nothing about
    `additionalProperties` reject undeclared properties. The specs never say
    `additionalProperties: false`; the real API silently ignores unknown fields (the reference
    mentions `image`), so an unknown field is almost always a client bug that would go unnoticed
    against the real service. Pass strict=False to validate exactly what the spec says;
  * a body sent to an operation that declares none is rejected in strict mode;
  * multipart part names for uploads are checked by the server while it streams the body (see
    server.py), because the bodies can be gigabytes.

Schemas are OpenAPI 3.0 schema objects; they are translated into JSON Schema draft 4 (the
draft OpenAPI 3.0 is based on): `nullable: true` becomes a union with null, `example` keys are
dropped, `$ref`s are made absolute so that fragments resolve through one registry.

Two deliberate corrections of the specs, both documented in the README:
  * toolbox ErrorResponse.code is `allOf: [DaemonErrorCode]` (a string enum) next to
    `type: object`, which no value can satisfy; the stray `type` is dropped (a swag artefact).
  * for response validation only: SessionExecuteResponse's output/stdout/stderr/exitCode may be
    null, because the real daemon serialises them from Go *string/*int fields without omitempty
    (apps/daemon/pkg/toolbox/process/session/types.go), e.g. the 202 answer of an async exec is
    {"cmdId":"...","output":null,"stdout":null,"stderr":null,"exitCode":null}.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import yaml
import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class ValidationFailure(Exception):
    """A request the spec would reject. `status` is what the server answers (404 for an unknown
    route, 405 for a known path with another method, else 400)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Operation:
    api: str                      # "api" or "toolbox"
    method: str                   # upper case
    template: str                 # the spec's path, e.g. /sandbox/{sandboxIdOrName}
    operation_id: str
    spec: dict                    # the converted operation object
    path_params: dict = field(default_factory=dict)   # filled in by match()


@dataclass
class ValidatedRequest:
    operation: Operation
    path_params: dict
    query: dict                   # name -> coerced value (lists for array parameters)
    headers: dict                 # lower-cased declared header name -> value
    json_body: Any = None         # parsed JSON body, when the operation takes one


_YAML_CACHE: dict[str, dict] = {}


def _load_yaml(path: str) -> dict:
    if path not in _YAML_CACHE:
        with open(path, "rb") as f:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            _YAML_CACHE[path] = yaml.load(f, Loader=loader)
    return copy.deepcopy(_YAML_CACHE[path])


def _jsonable(value: Any) -> Any:
    """YAML turns unquoted timestamps (in `example`s and a few `default`s) into datetime
    objects; JSON Schema wants plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class _Converter:
    """OpenAPI 3.0 schema objects -> JSON Schema draft 4, for one spec document."""

    def __init__(self, doc: dict, base_uri: str, strict: bool):
        self.doc = doc
        self.base_uri = base_uri
        self.strict = strict
        # Schemas used as members of an allOf with more than one member must stay open, or the
        # composition could never validate.
        self.open_schemas: set[str] = set()
        self._scan_allof(doc)

    def _scan_allof(self, node: Any) -> None:
        if isinstance(node, dict):
            members = node.get("allOf")
            if isinstance(members, list) and len(members) > 1:
                for m in members:
                    if isinstance(m, dict) and isinstance(m.get("$ref"), str):
                        self.open_schemas.add(m["$ref"])
            for v in node.values():
                self._scan_allof(v)
        elif isinstance(node, list):
            for v in node:
                self._scan_allof(v)

    def _resolve_local(self, ref: str) -> Any:
        node: Any = self.doc
        for part in ref.lstrip("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[part]
        return node

    def schema(self, node: Any, open_object: bool = False) -> Any:
        if isinstance(node, list):
            return [self.schema(v) for v in node]
        if not isinstance(node, dict):
            return node
        out: dict = {}
        for key, value in node.items():
            if key in ("example", "examples", "x-enum-varnames", "xml", "externalDocs",
                       "discriminator", "deprecated", "readOnly", "writeOnly"):
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith("#/"):
                out["$ref"] = self.base_uri + value
            elif key == "properties" and isinstance(value, dict):
                out["properties"] = {k: self.schema(v) for k, v in value.items()}
            elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
                out[key] = [self.schema(v, open_object=(key == "allOf" and len(value) > 1))
                            for v in value]
            elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
                out[key] = self.schema(value)
            elif key == "nullable":
                continue
            else:
                out[key] = _jsonable(value)
        # ErrorResponse.code: allOf [$ref string enum] next to type: object (swag artefact).
        all_of = node.get("allOf")
        if "type" in out and isinstance(all_of, list) and len(all_of) == 1 and \
                isinstance(all_of[0], dict) and isinstance(all_of[0].get("$ref"), str):
            target = self._resolve_local(all_of[0]["$ref"])
            if isinstance(target, dict) and target.get("type") and target.get("type") != out["type"]:
                del out["type"]
        if self.strict and not open_object and "properties" in node and \
                "additionalProperties" not in node and node.get("type", "object") == "object":
            out["additionalProperties"] = False
        if node.get("nullable") is True:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
                if "enum" in out and None not in out["enum"]:
                    out["enum"] = list(out["enum"]) + [None]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        return out

    def document(self) -> dict:
        doc = copy.deepcopy(self.doc)
        comps = doc.get("components", {}).get("schemas", {})
        new_comps = {}
        for name, sch in comps.items():
            ref = "#/components/schemas/" + name
            new_comps[name] = self.schema(sch, open_object=ref in self.open_schemas)
        doc.setdefault("components", {})["schemas"] = new_comps
        return doc


class _ApiSpec:
    def __init__(self, name: str, path: str, strict: bool):
        self.name = name
        raw = _load_yaml(path)
        self.raw = raw
        self.strict = strict
        self.base_uri = "urn:daytona-spec:%s:%s" % (name, "strict" if strict else "plain")
        conv = _Converter(raw, self.base_uri, strict)
        self.converter = conv
        self.doc = conv.document()
        resource = Resource.from_contents(self.doc, default_specification=DRAFT4)
        self.registry = Registry().with_resource(self.base_uri, resource)
        self.routes: list[tuple[re.Pattern, str, dict, int]] = []
        for template, item in (raw.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            literal = 0
            parts = []
            for seg in template.strip("/").split("/"):
                if seg.startswith("{") and seg.endswith("}"):
                    parts.append("(?P<%s>[^/]+)" % re.sub(r"\W", "_", seg[1:-1]))
                else:
                    parts.append(re.escape(seg))
                    literal += 1
            regex = re.compile("^/" + "/".join(parts) + "$") if template != "/" else re.compile("^/$")
            self.routes.append((regex, template, item, literal))
        # Most literal segments first: /sandbox/paginated before /sandbox/{sandboxIdOrName}.
        self.routes.sort(key=lambda r: (-r[3], r[1]))
        self._validators: dict[str, jsonschema.Draft4Validator] = {}

    def validator(self, schema: Any) -> jsonschema.Draft4Validator:
        key = json.dumps(schema, sort_keys=True)
        v = self._validators.get(key)
        if v is None:
            v = jsonschema.Draft4Validator(schema, registry=self.registry)
            self._validators[key] = v
        return v

    def convert(self, schema: Any) -> Any:
        return self.converter.schema(schema)

    def match(self, method: str, path: str) -> tuple[str, dict, dict]:
        """(template, operation object, raw path params) or ValidationFailure."""
        path_methods: list[str] = []
        for regex, template, item, _ in self.routes:
            m = regex.match(path)
            if not m:
                continue
            op = item.get(method.lower())
            if op is None:
                path_methods.extend(k.upper() for k in item if k in HTTP_METHODS)
                continue
            params = {}
            # Map regex group names back to the spec's parameter names.
            names = re.findall(r"{([^}]+)}", template)
            for n in names:
                params[n] = urllib.parse.unquote(m.group(re.sub(r"\W", "_", n)))
            return template, item, params
        if path_methods:
            raise ValidationFailure("%s %s: the %s spec has this path only for %s" % (
                method, path, self.name, ", ".join(sorted(set(path_methods)))), 405)
        raise ValidationFailure("%s %s: no such path in the %s spec" % (method, path, self.name), 404)


def _coerce(raw: str, schema: dict, where: str) -> Any:
    t = schema.get("type")
    if t == "integer":
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise ValidationFailure("%s: %r is not an integer" % (where, raw))
        return int(raw)
    if t == "number":
        try:
            value = float(raw)
        except ValueError:
            raise ValidationFailure("%s: %r is not a number" % (where, raw)) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationFailure("%s: %r is not a finite number" % (where, raw))
        return int(value) if value.is_integer() and re.fullmatch(r"[+-]?\d+", raw) else value
    if t == "boolean":
        if raw not in ("true", "false"):
            raise ValidationFailure("%s: %r is not a boolean (true or false)" % (where, raw))
        return raw == "true"
    return raw


def _format_error(prefix: str, err: jsonschema.ValidationError) -> str:
    loc = "".join("[%d]" % p if isinstance(p, int) else ".%s" % p for p in err.absolute_path)
    return "%s%s: %s" % (prefix, loc, err.message)


class Spec:
    """Both Daytona specs. `strict` applies to request validation (see the module doc)."""

    def __init__(self, api_path: str, toolbox_path: str, strict: bool = True):
        self.strict = strict
        self.apis = {
            "api": _ApiSpec("api", api_path, strict),
            "toolbox": _ApiSpec("toolbox", toolbox_path, strict),
        }
        # Response validation never adds additionalProperties: false on its own terms; it is
        # strict too (our server must not invent fields), except for the documented nulls.
        self.response_apis = {
            "api": _ApiSpec("api", api_path, True),
            "toolbox": _ApiSpec("toolbox", toolbox_path, True),
        }
        tb = self.response_apis["toolbox"]
        ser = tb.doc["components"]["schemas"].get("SessionExecuteResponse")
        if ser:
            for k in ("output", "stdout", "stderr", "exitCode"):
                p = ser["properties"].get(k)
                if p and isinstance(p.get("type"), str):
                    p["type"] = [p["type"], "null"]
            resource = Resource.from_contents(tb.doc, default_specification=DRAFT4)
            tb.registry = Registry().with_resource(tb.base_uri, resource)
            tb._validators.clear()

    # ---- requests -------------------------------------------------------------------------

    def match(self, api: str, method: str, path: str) -> Operation:
        spec = self.apis[api]
        template, item, params = spec.match(method, path)
        op = item[method.lower()]
        operation = Operation(api, method.upper(), template, op.get("operationId", ""), op)
        operation.path_params = params
        operation.path_item = item  # type: ignore[attr-defined]
        return operation

    def _parameters(self, operation: Operation) -> list[dict]:
        spec = self.apis[operation.api]
        merged: dict[tuple[str, str], dict] = {}
        for source in (operation.path_item.get("parameters") or [],  # type: ignore[attr-defined]
                       operation.spec.get("parameters") or []):
            for p in source:
                if "$ref" in p:
                    p = spec.converter._resolve_local(p["$ref"])
                merged[(p["in"], p["name"])] = p
        return list(merged.values())

    def validate_request(self, operation: Operation, query_string: str, headers: dict,
                         content_type: str | None, body: bytes | None,
                         streamed_body: bool = False) -> ValidatedRequest:
        """Validates everything but a streamed body (multipart uploads: the server checks their
        part names itself). `headers` maps lower-case names to values. `body` is None when the
        request has none. Raises ValidationFailure."""
        spec = self.apis[operation.api]
        where = "%s %s" % (operation.method, operation.template)
        query_pairs = urllib.parse.parse_qsl(query_string, keep_blank_values=True,
                                             strict_parsing=False)
        query_multi: dict[str, list[str]] = {}
        for k, v in query_pairs:
            query_multi.setdefault(k, []).append(v)
        out_query: dict[str, Any] = {}
        out_headers: dict[str, str] = {}
        declared_query = set()
        for p in self._parameters(operation):
            loc, name = p["in"], p["name"]
            schema = p.get("schema") or {}
            conv = spec.convert(schema)
            required = bool(p.get("required")) or loc == "path"
            label = "%s parameter %r" % (loc, name)
            if loc == "query":
                declared_query.add(name)
                values = query_multi.get(name)
                if values is None:
                    if required:
                        raise ValidationFailure("%s: required %s is missing" % (where, label))
                    continue
                if schema.get("type") == "array":
                    item_schema = schema.get("items") or {}
                    if "$ref" in item_schema:
                        item_schema = spec.converter._resolve_local(item_schema["$ref"])
                    if p.get("explode", True) is False:
                        values = [x for v in values for x in v.split(",")]
                    value: Any = [_coerce(v, item_schema, "%s: %s" % (where, label)) for v in values]
                else:
                    if len(values) > 1:
                        raise ValidationFailure("%s: %s given %d times" % (where, label, len(values)))
                    resolved = schema
                    if "$ref" in schema:
                        resolved = spec.converter._resolve_local(schema["$ref"])
                    value = _coerce(values[0], resolved, "%s: %s" % (where, label))
            elif loc == "path":
                raw = operation.path_params.get(name)
                if raw is None or raw == "":
                    raise ValidationFailure("%s: %s is empty" % (where, label))
                value = _coerce(raw, schema, "%s: %s" % (where, label))
            elif loc == "header":
                raw = headers.get(name.lower())
                if raw is None:
                    if required:
                        raise ValidationFailure("%s: required %s is missing" % (where, label))
                    continue
                value = _coerce(raw, schema, "%s: %s" % (where, label))
            else:  # cookie
                continue
            errors = sorted(spec.validator(conv).iter_errors(value), key=lambda e: list(e.path))
            if errors:
                raise ValidationFailure(_format_error("%s: %s" % (where, label), errors[0]))
            if loc == "query":
                out_query[name] = value
            elif loc == "path":
                operation.path_params[name] = value
            else:
                out_headers[name.lower()] = value
        if self.strict:
            unknown = sorted(set(query_multi) - declared_query)
            if unknown:
                raise ValidationFailure("%s: query parameter(s) %s not declared by the spec" % (
                    where, ", ".join(repr(u) for u in unknown)))

        json_body = None
        rb = operation.spec.get("requestBody")
        has_body = body is not None and len(body) > 0 or streamed_body
        if rb is None:
            if has_body and self.strict:
                raise ValidationFailure("%s: the spec declares no request body for this "
                                        "operation, but one was sent" % where)
        else:
            if "$ref" in rb:
                rb = spec.converter._resolve_local(rb["$ref"])
            content = rb.get("content") or {}
            if not has_body:
                if rb.get("required"):
                    raise ValidationFailure("%s: the request body is required" % where)
            else:
                media = (content_type or "").split(";")[0].strip().lower()
                chosen = None
                for declared in content:
                    d = declared.lower()
                    if d == media or d == "*/*" or (d.endswith("/*") and media.startswith(d[:-1])):
                        chosen = declared
                        break
                if chosen is None:
                    raise ValidationFailure("%s: Content-Type %r is not one the spec declares (%s)" % (
                        where, content_type, ", ".join(content)))
                schema = (content[chosen] or {}).get("schema")
                is_json = media == "application/json" or media.endswith("+json") or \
                    (chosen == "*/*" and media in ("", "application/json"))
                if is_json and not streamed_body:
                    try:
                        json_body = json.loads(body.decode("utf-8"))  # type: ignore[union-attr]
                    except (UnicodeDecodeError, ValueError) as e:
                        raise ValidationFailure("%s: the body is not valid JSON: %s" % (where, e)) from None
                    if schema is not None:
                        conv = spec.convert(schema)
                        errors = sorted(spec.validator(conv).iter_errors(json_body),
                                        key=lambda e: list(e.absolute_path))
                        if errors:
                            raise ValidationFailure(_format_error("%s: body" % where, errors[0]))
        return ValidatedRequest(operation, dict(operation.path_params), out_query, out_headers,
                                json_body)

    # ---- responses ------------------------------------------------------------------------

    def validate_response(self, api: str, method: str, template: str, status: int,
                          content_type: str | None, body: bytes | None) -> list[str]:
        """Problems of one response of our server against the spec (empty = conforms).
        Only JSON bodies are checked against schemas; for other media types the status code and
        the media type are checked."""
        spec = self.response_apis[api]
        item = (spec.raw.get("paths") or {}).get(template) or {}
        op = item.get(method.lower())
        if op is None:
            return ["%s %s is not in the %s spec" % (method, template, api)]
        responses = op.get("responses") or {}
        resp = responses.get(str(status)) or responses.get("%dXX" % (status // 100)) or \
            responses.get("default")
        where = "%s %s -> %d" % (method, template, status)
        if resp is None:
            # The API spec declares only success answers; error answers are documented in the
            # reference (NestJS error body) and are not schema-checked.
            if status >= 400:
                return []
            return ["%s: status %d is not declared (declared: %s)" % (
                where, status, ", ".join(sorted(responses)))]
        content = resp.get("content") or {}
        if not content:
            # swag writes `content: {}` both for "no body" (204) and for "body not described"
            # (e.g. bulk-upload's 200 {"files":[...]}); only a 204 must be empty.
            if body and status == 204:
                return ["%s: a 204 answer must have no body" % where]
            return []
        media = (content_type or "").split(";")[0].strip().lower()
        chosen = None
        for declared in content:
            d = declared.lower()
            if d == media or d == "*/*":
                chosen = declared
                break
        if chosen is None and media == "application/json":
            # swag gives error answers the operation's @Produce type, e.g. ErrorResponse as
            # application/octet-stream for /files/download; the daemon sends JSON. Check the
            # JSON against the declared schema.
            for declared, media_obj in content.items():
                if (media_obj or {}).get("schema") is not None:
                    chosen = declared
                    break
        if chosen is None:
            return ["%s: Content-Type %r not declared (%s)" % (where, content_type, ", ".join(content))]
        schema = (content[chosen] or {}).get("schema")
        if schema is None or media != "application/json":
            return []
        try:
            value = json.loads((body or b"").decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return ["%s: body is not JSON: %s" % (where, e)]
        conv = spec.convert(schema)
        return [_format_error("%s: body" % where, e)
                for e in spec.validator(conv).iter_errors(value)]
