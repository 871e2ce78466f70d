#!/usr/bin/python3
"""Validates Kubernetes manifests against the Kubernetes API schema, offline.

The schema is the one the official Python client (Debian python3-kubernetes) was generated
from: every model's openapi_types (field -> type) and attribute_map (field -> JSON key). Checked
per object: apiVersion/kind known, every key a field of its type (an unknown key is what
`kubectl apply --validate=strict` rejects), scalar types, list and map shapes, and required
fields (the client's own setters refuse None for them).

  k8s-validate.py FILE.yaml   -> exit 0 and "ok: N objects", or exit 1 and one line per problem
"""
import datetime
import re
import sys

import kubernetes.client as k8s
import yaml

PRIMITIVE = {
    'str': (str,),
    'int': (int,),
    'float': (int, float),
    'bool': (bool,),
    'object': (object,),
    'datetime': (str, datetime.datetime),
    'date': (str, datetime.date),
}


def model_for(api_version, kind):
    """apps/v1 DaemonSet -> V1DaemonSet (the client names models by version and kind, with the
    group first only where two groups share a kind: events.k8s.io/v1 Event -> EventsV1Event)."""
    group, _, version = api_version.rpartition('/')
    names = [f'{version.capitalize()}{kind}']
    if group:
        names.insert(0, f'{group.split(".")[0].capitalize()}{version.capitalize()}{kind}')
    for name in names:
        cls = getattr(k8s, name, None)
        if cls is not None:
            return cls
    return None


def check(value, typ, path, problems):
    if value is None:
        return
    m = re.fullmatch(r'list\[(.+)\]', typ)
    if m:
        if not isinstance(value, list):
            problems.append(f'{path}: expected a list, got {type(value).__name__}')
            return
        for i, item in enumerate(value):
            check(item, m.group(1), f'{path}[{i}]', problems)
        return
    m = re.fullmatch(r'dict\(str, (.+)\)', typ)
    if m:
        if not isinstance(value, dict):
            problems.append(f'{path}: expected a map, got {type(value).__name__}')
            return
        for k, v in value.items():
            check(v, m.group(1), f'{path}.{k}', problems)
        return
    if typ in PRIMITIVE:
        ok = PRIMITIVE[typ]
        if typ in ('int', 'float') and isinstance(value, bool):
            ok = ()
        if not isinstance(value, ok):
            problems.append(f'{path}: expected {typ}, got {type(value).__name__} {value!r}')
        return
    cls = getattr(k8s, typ, None)
    if cls is None:
        problems.append(f'{path}: unknown schema type {typ}')
        return
    if not isinstance(value, dict):
        problems.append(f'{path}: expected an object ({typ}), got {type(value).__name__}')
        return
    by_key = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, v in value.items():
        attr = by_key.get(key)
        if attr is None:
            problems.append(f'{path}: unknown field "{key}" in {typ}')
            continue
        check(v, cls.openapi_types[attr], f'{path}.{key}', problems)
    # required fields: the generated setters raise ValueError for None where the schema requires
    # a value (client-side validation on)
    cfg = k8s.Configuration()
    cfg.client_side_validation = True
    probe = cls.__new__(cls)
    probe.local_vars_configuration = cfg
    for attr, json_key in cls.attribute_map.items():
        if json_key in value:
            continue
        try:
            setattr(probe, attr, None)
        except ValueError:
            problems.append(f'{path}: missing required field "{json_key}" in {typ}')


def main():
    if len(sys.argv) != 2:
        print('usage: k8s-validate.py FILE.yaml', file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    problems = []
    for i, doc in enumerate(docs):
        where = f'document {i + 1}'
        if not isinstance(doc, dict) or 'apiVersion' not in doc or 'kind' not in doc:
            problems.append(f'{where}: not a Kubernetes object (apiVersion and kind are required)')
            continue
        cls = model_for(doc['apiVersion'], doc['kind'])
        if cls is None:
            problems.append(f'{where}: unknown apiVersion/kind {doc["apiVersion"]} {doc["kind"]}')
            continue
        where = f'{doc["kind"]} {doc.get("metadata", {}).get("name", "?")}'
        check(doc, cls.__name__, where, problems)
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f'ok: {len(docs)} objects')
    return 0


if __name__ == '__main__':
    sys.exit(main())
