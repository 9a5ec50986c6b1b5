#!/usr/bin/env python3
"""Lists a crate's public API from rustdoc's JSON output, one item per line, sorted.

Usage: public_api.py TARGET/doc/CRATE.json > docs/api/CRATE.txt

Every public path is listed with its signature: modules, re-exports, structs with their public
fields, enums with their variants, traits with their items, functions, inherent methods,
constants, type aliases, and the trait implementations of public types (blanket and auto-trait
implementations left out). `#[non_exhaustive]` and `#[cfg(feature = ..)]` are shown. The
format is this script's own: stable for one toolchain, and a change in it shows in review.
"""

import json
import re
import sys


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    lister = Lister(doc)
    for line in sorted(set(lister.run())):
        print(line)


class Lister:
    def __init__(self, doc):
        self.doc = doc
        self.index = doc["index"]
        self.lines = []
        # Local item id -> every public path it is reachable at.
        self.locations = {}
        self.walked = set()

    def item(self, item_id):
        return self.index.get(str(item_id))

    def emit(self, item, text):
        self.lines.append(markers(item) + text)

    def run(self):
        global RESOLVE
        root = self.doc["root"]
        self.locations[root] = [self.item(root)["name"]]
        self.collect(root, self.item(root)["name"])
        canonical_paths = {
            str(item_id): min(paths, key=lambda p: (p.count("::"), p))
            for item_id, paths in self.locations.items()
        }
        external = {
            item_id: "::".join(summary["path"])
            for item_id, summary in self.doc["paths"].items()
            if summary["crate_id"] != 0
        }
        # Types are named by their public path here, by their defining path elsewhere.
        RESOLVE = lambda item_id: canonical_paths.get(str(item_id)) or external.get(str(item_id))
        for item_id, paths in self.locations.items():
            # An item re-exported from a private module is listed at its shortest public
            # path; every other path names it.
            canonical = min(paths, key=lambda p: (p.count("::"), p))
            self.render(item_id, canonical)
            for other in set(paths) - {canonical}:
                self.lines.append(f"pub use {other} = {canonical}")
        return self.lines

    def collect(self, module_id, path):
        if module_id in self.walked:
            return
        self.walked.add(module_id)
        for child_id in self.item(module_id)["inner"]["module"]["items"]:
            child = self.item(child_id)
            if child is None or child["visibility"] != "public":
                continue
            if kind(child) == "use":
                use = child["inner"]["use"]
                target = self.item(use["id"]) if use["id"] is not None else None
                if use["is_glob"]:
                    if target is not None and kind(target) == "module":
                        self.collect(use["id"], path)
                    else:
                        self.emit(child, f"pub use {path}::* = {use['source']}::*")
                    continue
                at = f"{path}::{use['name']}"
                if target is None:
                    self.emit(child, f"pub use {at} = {use['source']}")
                    continue
                self.locations.setdefault(use["id"], []).append(at)
                if kind(target) == "module":
                    self.collect(use["id"], at)
            elif child.get("name"):
                at = f"{path}::{child['name']}"
                self.locations.setdefault(child_id, []).append(at)
                if kind(child) == "module":
                    self.collect(child_id, at)

    # ---- items -------------------------------------------------------------------------

    def render(self, item_id, path):
        item = self.item(item_id)
        k = kind(item)
        inner = item["inner"][k] if isinstance(item["inner"], dict) else None
        if k == "module":
            self.emit(item, f"pub mod {path}")
        elif k == "struct":
            self.struct(item, inner, path)
        elif k == "enum":
            self.enum(item, inner, path)
        elif k == "union":
            self.emit(item, f"pub union {path}{generics(inner['generics'])}")
        elif k == "trait":
            self.trait(item, inner, path)
        elif k == "function":
            self.emit(item, "pub " + function(item["name"], inner, path))
        elif k == "type_alias":
            self.emit(
                item,
                f"pub type {path}{generics(inner['generics'])} = {ty(inner['type'])}",
            )
        elif k == "constant":
            self.emit(item, f"pub const {path}: {ty(inner['type'])}")
        elif k == "static":
            self.emit(item, f"pub static {path}: {ty(inner['type'])}")
        elif k == "macro":
            self.emit(item, f"macro {path}!")
        else:
            self.emit(item, f"{k} {path}")

    def struct(self, item, inner, path):
        g = generics(inner["generics"])
        shape = inner["kind"]
        if shape == "unit":
            self.emit(item, f"pub struct {path}{g};")
        elif "tuple" in shape:
            fields = [
                ty(self.item(f)["inner"]["struct_field"]) if f is not None else "_"
                for f in shape["tuple"]
            ]
            self.emit(item, f"pub struct {path}{g}({', '.join(fields)})")
        else:
            plain = shape["plain"]
            hidden = " (private fields)" if plain["has_stripped_fields"] else ""
            self.emit(item, f"pub struct {path}{g}{hidden}")
            for field_id in plain["fields"]:
                field = self.item(field_id)
                self.emit(field, f"pub {path}::{field['name']}: {ty(field['inner']['struct_field'])}")
        self.impls(inner["impls"], path)

    def enum(self, item, inner, path):
        self.emit(item, f"pub enum {path}{generics(inner['generics'])}")
        for variant_id in inner["variants"]:
            variant = self.item(variant_id)
            shape = variant["inner"]["variant"]["kind"]
            name = f"{path}::{variant['name']}"
            if shape == "plain":
                self.emit(variant, name)
            elif "tuple" in shape:
                fields = [
                    ty(self.item(f)["inner"]["struct_field"]) if f is not None else "_"
                    for f in shape["tuple"]
                ]
                self.emit(variant, f"{name}({', '.join(fields)})")
            else:
                fields = [
                    f"{self.item(f)['name']}: {ty(self.item(f)['inner']['struct_field'])}"
                    for f in shape["struct"]["fields"]
                ]
                self.emit(variant, f"{name} {{ {', '.join(fields)} }}")
        self.impls(inner["impls"], path)

    def trait(self, item, inner, path):
        bounds = (": " + " + ".join(bound(b) for b in inner["bounds"])) if inner["bounds"] else ""
        self.emit(item, f"pub trait {path}{generics(inner['generics'])}{bounds}")
        for member_id in inner["items"]:
            member = self.item(member_id)
            self.assoc(member, path)

    def assoc(self, member, path):
        k = kind(member)
        inner = member["inner"][k]
        if k == "function":
            self.emit(member, function(member["name"], inner, f"{path}::{member['name']}"))
        elif k == "assoc_type":
            bounds = (": " + " + ".join(bound(b) for b in inner["bounds"])) if inner["bounds"] else ""
            value = f" = {ty(inner['type'])}" if inner.get("type") else ""
            self.emit(member, f"type {path}::{member['name']}{bounds}{value}")
        elif k == "assoc_const":
            self.emit(member, f"const {path}::{member['name']}: {ty(inner['type'])}")

    def impls(self, impl_ids, path):
        for impl_id in impl_ids:
            impl = self.item(impl_id)
            inner = impl["inner"]["impl"]
            if inner["is_synthetic"] or inner["blanket_impl"] is not None:
                continue
            if inner["trait"] is None:
                for member_id in inner["items"]:
                    member = self.item(member_id)
                    if member["visibility"] == "public":
                        self.assoc_inherent(member, path)
            elif inner["trait"]["path"] not in MARKERS:
                neg = "!" if inner["is_negative"] else ""
                self.emit(
                    impl,
                    f"impl{generics(inner['generics'])} {neg}{path_of(inner['trait'])} "
                    f"for {ty(inner['for'])}{where(inner['generics'])}",
                )

    def assoc_inherent(self, member, path):
        k = kind(member)
        inner = member["inner"][k]
        if k == "function":
            self.emit(member, "pub " + function(member["name"], inner, f"{path}::{member['name']}"))
        elif k == "assoc_const":
            self.emit(member, f"pub const {path}::{member['name']}: {ty(inner['type'])}")


# ---- rendering -----------------------------------------------------------------------------

# Compiler-internal traits that derives implement: not part of what a user relies on.
MARKERS = {"StructuralPartialEq"}

# Item id -> the path to print (set by `Lister.run`).
RESOLVE = lambda item_id: None


def kind(item):
    inner = item["inner"]
    return next(iter(inner)) if isinstance(inner, dict) else inner


def markers(item):
    """`#[non_exhaustive]` and the Cargo features gating the item."""
    out = []
    for attr in item.get("attrs", []):
        if attr == "non_exhaustive" or (isinstance(attr, dict) and "non_exhaustive" in attr):
            out.append("#[non_exhaustive] ")
        text = attr.get("other", "") if isinstance(attr, dict) else str(attr)
        for feature in re.findall(r'name: "feature", value: Some\("([^"]+)"\)', text):
            out.append(f'#[cfg(feature = "{feature}")] ')
        if text.startswith("#[cfg("):
            out.append(text + " ")
    return "".join(out)


def function(name, inner, path):
    header = inner["header"]
    prefix = ""
    if header.get("is_const"):
        prefix += "const "
    if header.get("is_async"):
        prefix += "async "
    if header.get("is_unsafe"):
        prefix += "unsafe "
    sig = inner["sig"]
    args = []
    for arg_name, arg_type in sig["inputs"]:
        if arg_name == "self":
            args.append(self_arg(arg_type))
        else:
            args.append(f"{arg_name}: {ty(arg_type)}")
    out = f" -> {ty(sig['output'])}" if sig.get("output") is not None else ""
    return f"{prefix}fn {path}{generics(inner['generics'])}({', '.join(args)}){out}{where(inner['generics'])}"


def self_arg(t):
    if t == {"generic": "Self"}:
        return "self"
    if "borrowed_ref" in t and t["borrowed_ref"]["type"] == {"generic": "Self"}:
        ref = t["borrowed_ref"]
        life = f"{ref['lifetime']} " if ref.get("lifetime") else ""
        return f"&{life}{'mut ' if ref['is_mutable'] else ''}self"
    return f"self: {ty(t)}"


def generics(g):
    params = []
    for p in g["params"]:
        k = p["kind"]
        if "lifetime" in k:
            outlives = k["lifetime"]["outlives"]
            params.append(p["name"] + (": " + " + ".join(outlives) if outlives else ""))
        elif "type" in k:
            t = k["type"]
            if t.get("is_synthetic"):
                continue  # `impl Trait` arguments show in the signature
            b = (": " + " + ".join(bound(x) for x in t["bounds"])) if t["bounds"] else ""
            d = f" = {ty(t['default'])}" if t.get("default") else ""
            params.append(f"{p['name']}{b}{d}")
        elif "const" in k:
            params.append(f"const {p['name']}: {ty(k['const']['type'])}")
    return f"<{', '.join(params)}>" if params else ""


def where(g):
    preds = []
    for w in g.get("where_predicates", []):
        if "bound_predicate" in w:
            b = w["bound_predicate"]
            preds.append(f"{ty(b['type'])}: {' + '.join(bound(x) for x in b['bounds'])}")
        elif "lifetime_predicate" in w:
            lp = w["lifetime_predicate"]
            preds.append(f"{lp['lifetime']}: {' + '.join(lp['outlives'])}")
        elif "eq_predicate" in w:
            ep = w["eq_predicate"]
            preds.append(f"{ty(ep['lhs'])} == {term(ep['rhs'])}")
    return f" where {', '.join(preds)}" if preds else ""


def bound(b):
    if "trait_bound" in b:
        tb = b["trait_bound"]
        modifier = {"maybe": "?", "maybe_const": "~const "}.get(tb.get("modifier"), "")
        hrtb = ""
        if tb.get("generic_params"):
            hrtb = "for<" + ", ".join(p["name"] for p in tb["generic_params"]) + "> "
        return f"{hrtb}{modifier}{path_of(tb['trait'])}"
    if "outlives" in b:
        return b["outlives"]
    if "use" in b:
        return "use<" + ", ".join(str(u if isinstance(u, str) else next(iter(u.values()))) for u in b["use"]) + ">"
    return json.dumps(b, sort_keys=True)


def path_of(p):
    name = RESOLVE(p.get("id")) or p.get("path") or p.get("name", "")
    return name + args_of(p.get("args"))


def args_of(a):
    if not a:
        return ""
    if "angle_bracketed" in a:
        ab = a["angle_bracketed"]
        parts = [generic_arg(x) for x in ab["args"]]
        parts += [constraint(c) for c in ab.get("constraints", [])]
        return f"<{', '.join(parts)}>" if parts else ""
    if "parenthesized" in a:
        p = a["parenthesized"]
        out = f" -> {ty(p['output'])}" if p.get("output") else ""
        return f"({', '.join(ty(x) for x in p['inputs'])}){out}"
    if "return_type_notation" in a or a == "return_type_notation":
        return "(..)"
    return json.dumps(a, sort_keys=True)


def generic_arg(x):
    if "lifetime" in x:
        return x["lifetime"]
    if "type" in x:
        return ty(x["type"])
    if "const" in x:
        return x["const"].get("expr", "_")
    return "_"


def constraint(c):
    name = c["name"] + args_of(c.get("args"))
    binding = c["binding"]
    if "equality" in binding:
        return f"{name} = {term(binding['equality'])}"
    return f"{name}: {' + '.join(bound(b) for b in binding['constraint'])}"


def term(t):
    if "type" in t:
        return ty(t["type"])
    return t.get("constant", {}).get("expr", "_")


def ty(t):
    if t is None:
        return "()"
    if isinstance(t, str):
        return "_" if t == "infer" else t
    k = next(iter(t))
    v = t[k]
    if k == "resolved_path":
        return path_of(v)
    if k in ("generic", "primitive"):
        return v
    if k == "borrowed_ref":
        life = f"{v['lifetime']} " if v.get("lifetime") else ""
        return f"&{life}{'mut ' if v['is_mutable'] else ''}{ty(v['type'])}"
    if k == "raw_pointer":
        return f"*{'mut' if v['is_mutable'] else 'const'} {ty(v['type'])}"
    if k == "tuple":
        return "(" + ", ".join(ty(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if k == "slice":
        return f"[{ty(v)}]"
    if k == "array":
        return f"[{ty(v['type'])}; {v['len']}]"
    if k == "impl_trait":
        return "impl " + " + ".join(bound(b) for b in v)
    if k == "dyn_trait":
        parts = [path_of(x["trait"]) for x in v["traits"]]
        if v.get("lifetime"):
            parts.append(v["lifetime"])
        return "dyn " + " + ".join(parts)
    if k == "qualified_path":
        self_type = ty(v["self_type"])
        name = v["name"] + args_of(v.get("args"))
        if v.get("trait") and path_of(v["trait"]):
            return f"<{self_type} as {path_of(v['trait'])}>::{name}"
        return f"{self_type}::{name}"
    if k == "function_pointer":
        sig = v["sig"]
        out = f" -> {ty(sig['output'])}" if sig.get("output") is not None else ""
        return f"fn({', '.join(ty(a[1]) for a in sig['inputs'])}){out}"
    return json.dumps(t, sort_keys=True)


if __name__ == "__main__":
    main()
