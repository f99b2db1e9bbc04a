"""`pillcheck` command line. Every command calls the same library functions the app and API use."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from pillcheck import config

DEMO_BANNER = config.DEMO_BANNER
SEVERITY_MARK = {"critical": "!!", "warning": "! ", "caution": "~ ", "info": "  "}


class UserError(Exception):
    """Something the user can fix; printed as one line, no traceback."""


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=None,
                   help=f"catalog database (default: $PILLCHECK_DB, else {config.default_db()})")


def _open(args: argparse.Namespace):
    from pillcheck.catalog.db import open_catalog

    return open_catalog(args.db or config.default_db())


def _emit(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _emit_or_list(result: dict, as_json: bool) -> None:
    """JSON for machines, one `key value` line per entry for people."""
    if as_json:
        _emit(result)
        return
    width = max(map(len, result), default=0) + 2
    for k, v in result.items():
        print(f"{k:<{width}} {v}")


# ---------------------------------------------------------------- data
def cmd_data_import(args: argparse.Namespace) -> int:
    from pillcheck.catalog.importer import import_dir

    db = args.db or config.default_db()
    dirs = args.dir
    kind = "demo" if [Path(d).resolve() for d in dirs] == [config.DEMO_DIR.resolve()] else "official"
    counts = import_dir([Path(d) for d in dirs], db, data_kind=kind)
    print(f"imported {' '.join(map(str, dirs))} -> {db} in {counts.pop('seconds')} s: "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if kind == "demo":
        print(DEMO_BANNER)
    return 0


def cmd_data_demo(args: argparse.Namespace) -> int:
    args.dir = [config.DEMO_DIR]
    return cmd_data_import(args)


def cmd_data_update(args: argparse.Namespace) -> int:
    from pillcheck.catalog import sources

    db = args.db or config.default_db()
    result = sources.update(db, dest=args.download_dir, base=args.api_base, extra_dir=args.with_dir,
                            progress=not args.quiet)
    print(f"updated {db}: {result['requests']} requests, rules {result['dur_rules']:,}, items {result['items']:,}")
    return 0


STATS_SQL = {
    "items": "SELECT count(*) FROM items",
    "pill catalog items": "SELECT count(DISTINCT item_seq) FROM appearance",
    "catalog items with >=1 ingredient": """SELECT count(DISTINCT a.item_seq) FROM appearance a
        WHERE a.item_seq IN (SELECT item_seq FROM item_ingredients)""",
    "catalog items with >=1 DUR ingredient code": """SELECT count(DISTINCT a.item_seq) FROM appearance a
        WHERE a.item_seq IN (SELECT item_seq FROM item_ingredients WHERE ingr_code IS NOT NULL)""",
}


def catalog_stats(cat) -> dict:
    con = cat.cursor()
    out: dict = {"data": cat.data, "built_at": cat.meta.get("built_at")}
    out.update({k: con.execute(q).fetchall()[0][0] for k, q in STATS_SQL.items()})
    total = out["pill catalog items"] or 1
    out["ingredient coverage"] = round(out["catalog items with >=1 ingredient"] / total, 4)
    out["DUR code coverage"] = round(out["catalog items with >=1 DUR ingredient code"] / total, 4)
    out["rules"] = dict(con.execute("SELECT type_name, count(*) FROM dur_rules GROUP BY 1 ORDER BY 1").fetchall())
    out["rules"]["분할주의 (products)"] = con.execute("SELECT count(*) FROM split_rules").fetchall()[0][0]
    out["ingredient sources"] = dict(con.execute(
        "SELECT source, count(DISTINCT item_seq) FROM item_ingredients GROUP BY 1 ORDER BY 1").fetchall())
    # Coverage of pill-catalog products by the most trusted source that named their ingredients (importer tiers).
    tiers = con.execute(f"""
        WITH best AS (SELECT item_seq, min({_TIER}) AS tier, bool_or(ingr_code IS NOT NULL) AS coded
                      FROM item_ingredients WHERE item_seq IN (SELECT item_seq FROM appearance) GROUP BY 1)
        SELECT tier, count(*), count(*) FILTER (WHERE coded) FROM best GROUP BY 1 ORDER BY 1""").fetchall()
    out["ingredient coverage by source"] = {_TIER_NAMES[t]: round(n / total, 4) for t, n, _ in tiers}
    out["DUR code coverage by source"] = {_TIER_NAMES[t]: round(c / total, 4) for t, _, c in tiers}
    if cat.meta.get("hira_list_date"):
        hira = con.execute("""SELECT count(*), count(DISTINCT item_seq), count(*) FILTER (WHERE item_seq IS NULL),
            count(DISTINCT item_seq) FILTER (WHERE join_method = 'edi'),
            count(DISTINCT item_seq) FILTER (WHERE join_method = 'name'),
            count(DISTINCT item_seq) FILTER (WHERE join_method = 'name_company'),
            (SELECT count(*) FROM item_market WHERE item_seq IN (SELECT item_seq FROM appearance))
            FROM hira_products""").fetchall()[0]
        out[f"reimbursement list {cat.meta['hira_list_date']}"] = dict(zip(
            ("rows", "products joined", "rows not joined", "joined by EDI code", "joined by name",
             "joined by name + company",
             "pill catalog items on the list"), hira))
    return out


_TIER = "CASE WHEN source IN ('dur_product', 'main_ingr', 'permit') THEN 1 WHEN source = 'hira' THEN 2 ELSE 3 END"
_TIER_NAMES = {1: "official product data (DUR 품목, 허가)", 2: "HIRA generic name", 3: "product name"}


def cmd_data_stats(args: argparse.Namespace) -> int:
    stats = catalog_stats(_open(args))
    if args.json:
        _emit(stats)
        return 0
    if stats["data"] == "demo":
        print(DEMO_BANNER)
    for k, v in stats.items():
        if isinstance(v, dict):
            print(f"{k}:")
            for kk, vv in v.items():
                print(f"  {kk:<40} {vv:>8.1%}" if isinstance(vv, float) else f"  {kk:<40} {vv:>8,}")
        elif isinstance(v, float):
            print(f"{k:<44} {v:.1%}")
        else:
            print(f"{k:<44} {v:,}" if isinstance(v, int) else f"{k:<44} {v}")
    return 0


# ---------------------------------------------------------------- check / search
def _profile(age: float | None, pregnant: bool | None):
    from pillcheck.safety.dur import Profile

    try:
        profile = Profile(age=age, pregnant=pregnant)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if profile.implausible:
        print(f"note: pregnant at {age:g} years? Check --age and --pregnant (both are used).", file=sys.stderr)
    return profile


def pregnancy(parser: argparse.ArgumentParser) -> None:
    """--pregnant / --not-pregnant; neither: not known, and the pregnancy rules are reported as not checked."""
    parser.add_argument("--pregnant", action="store_true", default=None, help="enables pregnancy rules")
    parser.add_argument("--not-pregnant", dest="pregnant", action="store_false",
                        help="known not pregnant: the pregnancy check counts as done")


def _print_check(result, cat) -> None:
    if result.data == "demo":
        print(DEMO_BANNER)
    if not result.warnings:
        print("no DUR warnings for these products" + (" (but see below)" if result.unchecked or result.unknown else ""))
    for w in result.warnings:
        names = " + ".join(w.item_names)
        print(f"{SEVERITY_MARK.get(w.severity, '')}[{w.severity}] {w.type_name} ({w.kind}): {names}")
        print(f"     {', '.join(w.ingredient_names)} — {w.reason}"
              + (f" [고시 {w.notice_date}]" if w.notice_date else ""))
    if result.unknown:
        print(f"unknown item codes (not in the catalog): {' '.join(result.unknown)}")
    if result.unchecked:
        print(f"could not be checked (no ingredient data): {' '.join(result.unchecked)}")
    if result.checks_skipped:
        print(f"not checked without a profile: {', '.join(result.checks_skipped)} (give --age / --pregnant)")


def _batch_lines(path: str) -> Iterator[str]:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    try:
        yield from stream
    finally:
        if stream is not sys.stdin:
            stream.close()


def cmd_check(args: argparse.Namespace) -> int:
    from pillcheck.catalog.status import resolve_codes
    from pillcheck.safety.dur import check

    cat = _open(args)
    if args.batch:
        for n, line in enumerate(_batch_lines(args.batch), 1):
            if not line.strip():
                continue
            try:
                spec = json.loads(line)
                if isinstance(spec, dict):
                    items, age, preg = spec.get("items", []), spec.get("age", args.age), spec.get("pregnant", args.pregnant)
                else:
                    items, age, preg = spec, args.age, args.pregnant
                if not isinstance(items, list):
                    raise ValueError("expected a JSON list of item codes")
                _emit(check(cat.dur, resolve_codes(cat.cursor(), [str(i) for i in items]),
                            _profile(age, bool(preg))).to_dict())
            except (ValueError, UserError, TypeError) as exc:
                _emit({"line": n, "error": str(exc)})
        return 0
    if not args.items:
        raise UserError("give item codes (ITEM_SEQ) or --batch FILE")
    items = resolve_codes(cat.cursor(), args.items)  # package barcodes name their products
    result = check(cat.dur, items, _profile(args.age, args.pregnant))
    products = cat.status.of(items)
    if args.json:
        _emit({**result.to_dict(), "products": products})
    else:
        _print_check(result, cat)
        _print_status(products, cat)
    return 0


def _print_status(products: dict[str, dict], cat) -> None:
    """Recalls first (they change what a person should do), then which products are not on the current list."""
    names = cat.dur.items
    for seq, st in products.items():
        for r in st["recalls"]:
            print(f"!! recall: {seq} {names.get(seq, ('',))[0]} — {r['reason']}"
                  + (f" [{r['date']}]" if r["date"] else ""))
    missing = [seq for seq, st in products.items() if "market" in st and st["market"] is None and seq in names]
    if missing:
        print(f"not on the {cat.status.list_date} reimbursement list (OTC, or possibly no longer sold): {' '.join(missing)}")


def cmd_search(args: argparse.Namespace) -> int:
    from pillcheck.catalog import status

    cat = _open(args)
    if args.barcode:
        try:
            found = status.by_barcode(cat.cursor(), args.barcode)
        except status.BarcodeError as exc:
            raise UserError(str(exc)) from exc
        if args.json:
            _emit({"barcode": args.barcode, "results": found, "data": cat.data})
            return 0
        if not found:
            print(f"no product with package code {args.barcode} in this catalog")
        for f in found:
            print(f"{f['item_seq'] or '(not in the pill catalog)'}  {f['name']}  [{f['company'] or ''}]  "
                  f"from the {'reimbursement list' if f['source'] == 'hira' else 'recall notices'}")
        return 0
    if not args.text:
        raise UserError("give a name or imprint to search for, or --barcode CODE")
    hits = cat.search.search(args.text, limit=args.limit)
    if args.json:
        _emit({"query": args.text, "results": [h.to_dict() for h in hits], "data": cat.data})
        return 0
    if cat.data == "demo":
        print(DEMO_BANNER)
    if not hits:
        print("no match")
    for h in hits:
        imprint = " / ".join(x for x in (h.print_front, h.print_back) if x) or "-"
        print(f"{h.item_seq}  {h.score:5.1f}  {h.name}  [{h.company or ''}]  imprint {imprint}  {h.shape or ''} "
              f"{h.color or ''}")
    return 0


def _each_image(paths: list[Path], fn) -> list[dict]:
    """``fn(path)`` (a dict) per image; a photo that cannot be used gets its one-line error, the others still run."""
    from pillcheck.images import InputError

    out = []
    for path in paths:
        try:
            out.append({"image": str(path), **fn(path)})
        except InputError as exc:
            out.append({"image": str(path), "error": str(exc)})
    return out


def cmd_scan(args: argparse.Namespace) -> int:
    """Photos of medicine boxes -> the products their barcodes name, with what each pill looks like."""
    pipe = _pipeline(args)
    out = _each_image(args.images, lambda path: {"products": pipe.scan_box(path)})
    if args.json:
        _emit(out)
        return 0
    for r in out:
        if "error" in r:
            print(f"{r['image']}: {r['error']}")
        elif not r["products"]:
            print(f"{r['image']}: no package barcode could be read (hold the box flat, the bars sharp and filling "
                  "a third of the photo)")
        for f in r.get("products", []):
            looks = " · ".join(x for x in (f.get("imprint"), f.get("shape"), f.get("colour")) if x)
            print(f"{r['image']}: {f['barcode']} -> {f['item_seq'] or '(not in this catalog)'}  {f['name'] or ''}  "
                  f"[{f['company'] or ''}]  {looks}")
    return 0


ADVICE = {"dark": "too dark, take it in brighter light", "bright": "washed out, avoid direct sun and flash",
          "blurred": "blurred, hold still and focus", "cut_off": "a pill is cut off at the edge, step back",
          "too_far": "pills very small, come closer", "pile": "pills heaped or overlapping, spread them out",
          "no_pill": "no pill found"}


# ---------------------------------------------------------------- detection
def cmd_detect(args: argparse.Namespace) -> int:
    from pillcheck import images
    from pillcheck.inference import models
    from pillcheck.inference.photo_advice import advise

    det = models.detector(args.model)
    out = []
    for path in args.images:
        try:
            photo = images.decode(path, min_side=images.WORKING_SIDE)
        except images.InputError as exc:
            out.append({"image": str(path), "error": str(exc)})
            continue
        found = det(photo.rgb, conf=args.conf, iou=args.iou)
        d = found.scaled(photo.scale)
        out.append({"image": str(path), "width": photo.size[0], "height": photo.size[1],
                    "advice": advise(photo.rgb, found),
                    "pills": [{"box": [round(float(v), 1) for v in box], "confidence": round(float(c), 4)}
                              for box, c in zip(d.xyxy, d.confidence)]})
    if args.json:
        _emit(out)
    else:
        for r in out:
            advice = f" (photo: {ADVICE[r['advice']]})" if r.get("advice") else ""
            print(f"{r['image']}: " + (r["error"] if "error" in r else f"{len(r['pills'])} pills{advice}"))
    return 0


def yolo_folder(root: Path) -> list[tuple[Path, Path]]:
    """(image, label) pairs of a YOLO-format folder: ROOT/images/* with ROOT/labels/<stem>.txt."""
    img_dir = root / "images" if (root / "images").is_dir() else root
    lbl_dir = root / "labels" if (root / "labels").is_dir() else root
    pairs = [(p, lbl_dir / f"{p.stem}.txt") for p in sorted(img_dir.iterdir())
             if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".bmp")]
    if not pairs:
        raise UserError(f"{root}: no images found (expected ROOT/images/*.jpg and ROOT/labels/*.txt)")
    return pairs


def cmd_eval_detector(args: argparse.Namespace) -> int:
    from pillcheck import metrics
    from pillcheck.inference import models

    det = models.detector(args.model, args.imgsz, args.square, args.zoom_side, args.tiles, args.close, args.heap,
                          args.check)
    result = metrics.evaluate_detector(det, yolo_folder(Path(args.dataset)), iou=args.iou, conf=args.conf)
    _emit_or_list({"dataset": str(args.dataset), "imgsz": det.imgsz, "square": det.square, "zoom_side": det.zoom_side,
                   "tiles": det.tiles, "close": det.close.path.name if det.close else None,
                   "heap": det.heap.path.name if det.heap else None, **result}, args.json)
    return 0


# ---------------------------------------------------------------- analyze / identify
def _pipeline(args: argparse.Namespace):
    from pillcheck.pipeline import Pipeline

    return Pipeline(db=args.db, models_dir=getattr(args, "models", None))


def pill_line(p: dict) -> str:
    """One pill of a report (``Pill.to_dict``) as the text output's line: status, the leading product, what was read,
    where the name came from, and the group of interchangeable products it was named with."""
    best = p["candidates"][0] if p["candidates"] else None
    name = f"{best['name']} ({best['item_seq']}, {best['score']:.0%})" if best else "?"
    where = {True: "  · one of my medicines", False: "  · not one of my medicines"}.get(p["from_list"], "")
    if best and p.get("group") and p["status"] == "sure":  # the same for every check: say so, with its confidence
        together = best.get("evidence", {}).get("group_probability")
        where += (f"  · or one of {len(p['group'])} interchangeable products (same ingredient, strength, form"
                  f"{f'; {together:.1%} together' if together else ''})")
    return f"  #{p['index']} [{p['status']}] {name}  read: {p['imprint_read'] or '-'}{where}"


def cmd_analyze(args: argparse.Namespace) -> int:
    from pillcheck.safety.dur import condition_text

    pipe = _pipeline(args)
    profile = _profile(args.age, args.pregnant)
    meds = [m for m in (args.my_meds or "").split(",") if m.strip()]
    sides = {}
    for spec in args.other_side or []:
        number, _, side = spec.partition("=")
        if not number.strip().isdigit() or not side:
            raise UserError(f"--other-side {spec!r}: expected PILL=IMAGE, e.g. 2=back.jpg")
        sides[int(number)] = Path(side)
    if sides and len(args.images) != 1:
        raise UserError("--other-side needs exactly one IMAGE (pill numbers refer to it)")
    out = _each_image(args.images, lambda path: pipe.analyze(path, meds, profile, conf=args.conf,
                                                             other_sides=sides).to_dict())
    if args.json:
        _emit(out)
        return 0
    for r in out:
        if "error" in r:
            print(f"{r['image']}: {r['error']}")
            continue
        if r["data"] == "demo":
            print(DEMO_BANNER)
        advice = f"  (photo: {ADVICE[r['advice']]})" if r.get("advice") else ""
        print(f"{r['image']}: {len(r['pills'])} pills{advice}")
        for p in r["pills"]:
            print(pill_line(p))
        for w in r["warnings"]:
            print(f"  {SEVERITY_MARK.get(w['severity'], '')}[{w['severity']}] {w['type_name']}: "
                  f"{' + '.join(w['item_names'])} — {w['reason']}")
        for e in r["possible_warnings"]:
            w = e["warning"]
            print(f"  possible, {condition_text(e)} ({e['p']:.0%}): "
                  f"[{w['severity']}] {w['type_name']}: {' + '.join(w['item_names'])} — {w['reason']}")
        if r["not_identified"]:
            print(f"  not identified (confirm them to include them in the check): "
                  f"{', '.join('#' + str(i) for i in r['not_identified'])}")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from pillcheck.batch import command, engines
    from pillcheck.batch.inputs import InputMissing
    from pillcheck.batch.output import OutputError

    job = engines.Job(db=Path(args.db or config.default_db()).resolve(),
                      models_dir=Path(args.models or config.MODELS_DIR).resolve(),
                      my_meds=[m.strip() for m in (args.my_meds or "").split(",") if m.strip()],
                      profile=_profile(args.age, args.pregnant), conf=args.conf)
    _open(args)  # a missing catalog is one line before any work, not an error row per photo
    if args.engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise UserError("--engine ray needs Ray: pip install -e '.[scale]'") from exc
    try:
        summary = command.run(args.inputs, args.out, job, engine=args.engine, address=args.address,
                              actors=args.actors, progress=not args.quiet)
    except (InputMissing, OutputError) as exc:
        raise UserError(str(exc)) from exc
    print(summary.line(args.out))
    return 0


def cmd_eval_identify(args: argparse.Namespace) -> int:
    import csv

    import numpy as np

    from pillcheck import images
    from pillcheck.inference.detector import Detections
    from pillcheck.metrics import product_faces, read_kind, sure_answer

    root = Path(args.dataset)
    labels = root / "labels.csv" if root.is_dir() else root
    if not labels.is_file():
        raise UserError(f"{root}: expected labels.csv (image,x1,y1,x2,y2,item_seq[,subset]"
                        "[,other_image,ox1,oy1,ox2,oy2])")
    with open(labels, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    pipe = _pipeline(args)
    looks = None
    index = pipe.catalog.candidates
    kin = {str(seq): k for seq, k in zip(index.item_seq, index.dur_kin) if k}  # interchangeable products share one
    faces_of = product_faces(index)
    if args.lists:
        from pillcheck.training.med_lists import Lookalikes, simulated_lists

        looks = Lookalikes(index)

    stats: dict[str, dict[str, dict]] = {}
    by_image: dict[str, list[dict]] = {}
    for row in rows[: args.limit or None]:
        by_image.setdefault(row["image"], []).append(row)
    for image, pills in by_image.items():  # all pills of a photo together, as analyze sees them
        rgb = images.load(labels.parent / image)
        boxes = [[float(row[k]) for k in ("x1", "y1", "x2", "y2")] for row in pills]
        other_sides = {j: (images.load(labels.parent / row["other_image"]),
                           np.array([float(row[k]) for k in ("ox1", "oy1", "ox2", "oy2")]))
                       for j, row in enumerate(pills) if row.get("other_image")}
        lists = simulated_lists(image, [r["item_seq"] for r in pills], looks) if looks else {"none": None}
        found = pipe.identify_with_lists(rgb, Detections(boxes, [1.0] * len(boxes), [0] * len(boxes)), other_sides,
                                         list(lists.values()), args.pi, args.list_margin)
        for case, idents in zip(lists, found):
            for row, ident in zip(pills, idents):
                seqs = [c.item_seq for c in ident.candidates]
                kind, shared = read_kind(ident.imprint_read, faces_of.get(row["item_seq"], set()),
                                         faces_of.get(str(seqs[0]), set()) if seqs else set())
                for subset in ["all"] + ([row["subset"]] if row.get("subset") else []) + [kind]:
                    s = stats.setdefault(case, {}).setdefault(subset, {
                        "pills": 0, "top1": 0, "top5": 0, "sure": 0, "wrong_but_sure": 0, "interchangeable": 0,
                        "unknown": 0, "shared_code": 0, "as_group": 0, "group_not_lead": 0})
                    s["pills"] += 1
                    s["top1"] += bool(seqs[:1] == [row["item_seq"]])
                    # lost to a product whose face is that exact read too: the read could not settle it
                    s["shared_code"] += shared and seqs[:1] != [row["item_seq"]]
                    s["top5"] += row["item_seq"] in seqs[:5]
                    s["sure"] += ident.status == "sure"
                    s["unknown"] += ident.status == "unknown"
                    answer = sure_answer(row["item_seq"], seqs[0] if seqs else None, ident.group, ident.status)
                    wrong = answer == "wrong"
                    s["wrong_but_sure"] += wrong
                    s["as_group"] += ident.status == "sure" and bool(ident.group)
                    s["group_not_lead"] += answer == "right_in_group"
                    # named as another product interchangeable with the pill's: the same for every check
                    s["interchangeable"] += wrong and bool(kin.get(row["item_seq"])) and (
                        kin.get(row["item_seq"]) == kin.get(seqs[0]))
    result = {case: {subset: {"pills": s["pills"], "top1": round(s["top1"] / max(s["pills"], 1), 4),
                              "top5": round(s["top5"] / max(s["pills"], 1), 4),
                              "named_surely": round(s["sure"] / max(s["pills"], 1), 4),
                              # named surely as a group of interchangeable products; of those, the pills whose
                              # product is in the group but is not the one shown first
                              "named_as_group": round(s["as_group"] / max(s["pills"], 1), 4),
                              "group_truth_not_first": s["group_not_lead"],
                              "abstention": round(1 - s["sure"] / max(s["pills"], 1), 4),
                              "unknown": round(s["unknown"] / max(s["pills"], 1), 4),
                              "wrong_but_sure": s["wrong_but_sure"],
                              "wrong_but_sure_interchangeable": s["interchangeable"],
                              "lost_to_a_shared_code": round(s["shared_code"] / max(s["pills"], 1), 4)}
                     for subset, s in by_subset.items()}
              for case, by_subset in stats.items()}
    _emit_or_list(result if args.lists else result.get("none", {}), args.json)
    return 0


def _products_of(labels: list[Path]) -> set[str]:
    """The products of other sets' labels.csv (a tuning set is built without the evaluation's products)."""
    import csv

    seqs: set[str] = set()
    for path in labels:
        path = path / "labels.csv" if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"{path}: no labels.csv to exclude")
        with open(path, encoding="utf-8") as f:
            seqs.update(row["item_seq"] for row in csv.DictReader(f))
    return seqs


def cmd_build_identify_set(args: argparse.Namespace) -> int:
    from pillcheck.training import identify_set
    from pillcheck.training.detector import build_cutouts
    from pillcheck.training.render import appearance_records

    cat = _open(args)
    records = appearance_records(cat.cursor())
    cut_dir = Path(args.work) / "cutouts"
    build_cutouts(Path(args.shared), cut_dir, cat.path)
    labels = identify_set.build(Path(args.out), records, cut_dir, n_photo=args.photo, n_rendered=args.rendered,
                                n_multi=args.multi, n_pairs=args.pairs, n_realistic=args.realistic, seed=args.seed,
                                exclude=_products_of(args.exclude))
    print(f"wrote {labels}")
    return 0


def cmd_build_detect_sets(args: argparse.Namespace) -> int:
    from pillcheck.training import detector as td

    cfg = td.DatasetConfig(shared=Path(args.shared), db=args.db or config.default_db(),
                           out=Path(args.work) / "detector_data", seed=args.seed)
    written = td.build_real_world_sets(cfg, Path(args.out), n=args.n)
    for name, count in written.items():
        print(f"{args.out}/{name}: {count} photos — {td.REAL_WORLD_SETS[name]}")
    return 0


# ---------------------------------------------------------------- training (the [train] extra)
def cmd_train_detector(args: argparse.Namespace) -> int:
    from pillcheck.training import detector as td

    out = Path(args.work) / "detector_data"
    data = out / "data.yaml"
    if not data.exists() or args.rebuild:
        cfg = td.DatasetConfig(shared=Path(args.shared), db=args.db or config.default_db(), out=out,
                               synthetic=args.synthetic, piles=args.piles, pushin_repeat=args.real_repeat,
                               seed=args.seed, scenes_round=args.scenes_round, spread=args.spread, heaps=args.heaps,
                               printed=args.printed, closeups=args.closeups, official=args.official)
        data = td.build_dataset(cfg)
    best = td.train(data, Path(args.work) / "runs" / args.run, model=args.model, imgsz=args.imgsz,
                    epochs=args.epochs, batch=args.batch, resume=args.resume, device=args.device, threads=args.threads,
                    lr0=args.lr0, close_mosaic=args.close_mosaic, workers=args.workers, hours=args.hours,
                    cache=args.cache, init=args.init)
    weights = best if args.export == "best" else best.with_name("last.pt")
    onnx = td.export(weights, Path(args.output), imgsz=args.imgsz, serve_imgsz=args.serve_imgsz,
                     serve_square=args.serve_square)
    print(f"detector: {onnx}")
    return 0


def cmd_train_appearance(args: argparse.Namespace) -> int:
    from pillcheck.training import appearance as ta
    from pillcheck.training.detector import build_cutouts

    cut_dir = Path(args.work) / "cutouts"
    build_cutouts(Path(args.shared), cut_dir, args.db or config.default_db())
    metrics = ta.train(cut_dir, args.db or config.default_db(), Path(args.output), epochs=args.epochs,
                       seed=args.seed, threads=args.threads)
    _emit(metrics)
    return 0


def cmd_train_measure(args: argparse.Namespace) -> int:
    from pillcheck.training import measure as tm
    from pillcheck.training.detector import build_cutouts

    cut_dir = Path(args.work) / "cutouts"
    build_cutouts(Path(args.shared), cut_dir, args.db or config.default_db())
    metrics = tm.train(cut_dir, args.db or config.default_db(), Path(args.output), appearance=args.appearance,
                       epochs=args.epochs, views=args.views, seed=args.seed, threads=args.threads, room=args.room)
    _emit(metrics)
    return 0


def cmd_train_box_check(args: argparse.Namespace) -> int:
    from pillcheck.training import box_check as tb

    folders = [Path(f) for f in args.folders]
    if args.served_scenes:
        from pillcheck.training import detector as td

        if not args.served_scenes.is_dir():
            cfg = td.DatasetConfig(shared=Path(args.shared), db=args.db or config.default_db(),
                                   out=Path(args.work) / "detector_data")
            td.build_real_world_sets(cfg, args.served_scenes, counts=tb.SERVED_SCENES, training=True)
        folders += [args.served_scenes / name for name in tb.SERVED_SCENES]
    _emit(tb.train(folders, Path(args.output), heaps=args.heaps, epochs=args.epochs, seed=args.seed,
                   threads=args.threads, samples=args.samples))
    return 0


def cmd_train_imprint(args: argparse.Namespace) -> int:
    from pillcheck.training import imprint as ti
    from pillcheck.training.detector import build_cutouts
    from pillcheck.training.render import appearance_records

    cat = _open(args)
    cut_dir = Path(args.work) / "cutouts"
    build_cutouts(Path(args.shared), cut_dir, cat.path)
    metrics = ti.train(cut_dir, appearance_records(cat.cursor()), Path(args.output), epochs=args.epochs,
                       views=args.views, rendered=args.rendered, seed=args.seed, threads=args.threads,
                       init=args.init, lr=args.lr, hangul=args.hangul)
    _emit(metrics)
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pillcheck", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and decisions")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build and inspect the catalog database").add_subparsers(dest="data_cmd",
                                                                                               required=True)
    imp = data.add_parser("import", help="import official files from a folder (nedrug bulk files, API dumps/pages)")
    imp.add_argument("dir", type=Path, nargs="+", help="one folder or several (e.g. ../shared/data, or mfds/ hira/)")
    _db_arg(imp)
    imp.set_defaults(func=cmd_data_import)
    demo = data.add_parser("demo", help="build the catalog from the small fictitious demo fixture")
    _db_arg(demo)
    demo.set_defaults(func=cmd_data_demo)
    upd = data.add_parser("update", help="download the official data via the data.go.kr OpenAPIs, then import")
    _db_arg(upd)
    upd.add_argument("--download-dir", type=Path, default=None, help="where pages are kept (resumable)")
    upd.add_argument("--api-base", default=None, help="OpenAPI base URL (default $PILLCHECK_API_BASE or official)")
    upd.add_argument("--with-dir", type=Path, default=None, help="also import bulk files from this folder")
    upd.add_argument("--quiet", action="store_true", help="no progress bar")
    upd.set_defaults(func=cmd_data_update)
    st = data.add_parser("stats", help="items, rules per type and ingredient coverage")
    _db_arg(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_data_stats)

    chk = sub.add_parser("check", help="DUR warnings for item codes (ITEM_SEQ)")
    chk.add_argument("items", nargs="*", help="ITEM_SEQ codes or package barcodes (표준코드)")
    chk.add_argument("--age", type=float, default=None, help="age in years (enables age and elderly rules)")
    pregnancy(chk)
    chk.add_argument("--batch", default=None,
                     help="JSON lines file ('-' = stdin): a list of codes, or {items, age, pregnant}, per line")
    chk.add_argument("--json", action="store_true")
    _db_arg(chk)
    chk.set_defaults(func=cmd_check)

    se = sub.add_parser("search", help="fuzzy search over product names and imprints")
    se.add_argument("text", nargs="?", help="product name, company or imprint")
    se.add_argument("--barcode", default=None, help="the package barcode (표준코드 / EAN-13, GTIN-14 or GS1 string)")
    se.add_argument("--limit", type=int, default=10)
    se.add_argument("--json", action="store_true")
    _db_arg(se)
    se.set_defaults(func=cmd_search)
    from pillcheck.ui.serve import add_parser as add_serve

    add_serve(sub)

    de = sub.add_parser("detect", help="find every pill in photos (boxes in original pixels)")
    de.add_argument("images", nargs="+", type=Path)
    de.add_argument("--conf", type=float, default=0.35, help="confidence threshold")
    de.add_argument("--iou", type=float, default=0.5, help="NMS IoU threshold")
    de.add_argument("--model", type=Path, default=None, help="detector ONNX (default models/detector.onnx)")
    de.add_argument("--json", action="store_true")
    de.set_defaults(func=cmd_detect)

    ev = sub.add_parser("eval", help="evaluate a model on a labelled folder").add_subparsers(dest="eval_cmd",
                                                                                            required=True)
    ed = ev.add_parser("detector", help="precision, recall, mAP50, mAP50-95 on a YOLO-format folder")
    ed.add_argument("dataset", type=Path)
    ed.add_argument("--conf", type=float, default=0.35, help="operating threshold for precision/recall")
    ed.add_argument("--iou", type=float, default=0.5, help="NMS IoU threshold")
    ed.add_argument("--model", type=Path, default=None)
    ed.add_argument("--imgsz", type=int, default=None, help="input size (default: the one stored in the model)")
    ed.add_argument("--square", action=argparse.BooleanOptionalAction, default=None,
                    help="pad the input to a square (default: as stored in the model)")
    ed.add_argument("--zoom-side", type=int, default=None,
                    help="long side of the photo in the zoomed-out second pass, for close-ups (0: off; default: as served)")
    ed.add_argument("--tiles", action=argparse.BooleanOptionalAction, default=True,
                    help="the tile pass on heaps (--no-tiles: off, to compare)")
    ed.add_argument("--close", action=argparse.BooleanOptionalAction, default=True,
                    help="photos of big pills to detector_close.onnx beside the model, if there (--no-close: the model alone)")
    ed.add_argument("--heap", action=argparse.BooleanOptionalAction, default=True,
                    help="a heap's tiles read by detector_heap.onnx beside the model, if there (--no-heap: by the model)")
    ed.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                    help="boxes through box_check.onnx beside the model, if there (--no-check: every box kept)")
    ed.add_argument("--json", action="store_true")
    ed.set_defaults(func=cmd_eval_detector)

    an = sub.add_parser("analyze", help="photo -> pills -> products -> DUR warnings")
    an.add_argument("images", nargs="+", type=Path)
    an.add_argument("--my-meds", default="",
                    help="comma-separated medicines you take: ITEM_SEQ codes or package barcodes (표준코드); they join "
                         "the check and help name the pills")
    an.add_argument("--age", type=float, default=None)
    pregnancy(an)
    an.add_argument("--conf", type=float, default=0.35)
    an.add_argument("--other-side", action="append", metavar="PILL=IMAGE",
                    help="a photo of pill PILL (its number in the report) turned over; both sides are matched together")
    an.add_argument("--models", type=Path, default=None, help="models folder (default models/)")
    an.add_argument("--json", action="store_true")
    _db_arg(an)
    an.set_defaults(func=cmd_analyze)
    ba = sub.add_parser("batch", help="many photos (folders, zips, globs) -> one row per pill, warning and photo "
                                      "in a CSV, JSON Lines or Parquet file; resumable")
    ba.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, folders (searched recursively), zips, globs")
    ba.add_argument("--out", type=Path, required=True, metavar="FILE",
                    help="FILE.csv, FILE.jsonl or FILE.parquet; photos already complete in it are skipped")
    ba.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="local: this process, every core; ray: Ray Data actors (the [scale] extra)")
    ba.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray on this machine)")
    ba.add_argument("--actors", type=int, default=None,
                    help="Ray actors, each with its own models (default: one per GPU, else one per core)")
    ba.add_argument("--my-meds", default="", help="comma-separated medicines (ITEM_SEQ or barcodes), as for analyze")
    ba.add_argument("--age", type=float, default=None)
    pregnancy(ba)
    ba.add_argument("--conf", type=float, default=0.35)
    ba.add_argument("--models", type=Path, default=None, help="models folder (default models/)")
    ba.add_argument("--quiet", action="store_true", help="no progress bar")
    _db_arg(ba)
    ba.set_defaults(func=cmd_batch)
    sc = sub.add_parser("scan", help="photo of a medicine box -> the product(s) its barcode names")
    sc.add_argument("images", nargs="+", type=Path)
    sc.add_argument("--json", action="store_true")
    _db_arg(sc)
    sc.set_defaults(func=cmd_scan)

    ei = ev.add_parser("identify", help="top-1/top-5, abstention and wrong-but-sure on a labelled folder")
    ei.add_argument("dataset", type=Path,
                    help="folder with labels.csv (image,x1,y1,x2,y2,item_seq[,subset][,other_image,ox1,oy1,ox2,oy2])")
    ei.add_argument("--limit", type=int, default=0)
    ei.add_argument("--lists", action="store_true",
                    help="also rank under simulated medication lists (the photo's products + 3/9/20 others, and lists "
                         "of 10 that do not hold them); one result per case")
    ei.add_argument("--pi", type=float, default=None, help="prior mass of the list's products (default: LIST_PI)")
    ei.add_argument("--list-margin", type=float, default=None,
                    help="log-likelihood margin within which a product off the list keeps a listed one from being "
                         "sure (default: LIST_MARGIN)")

    ei.add_argument("--models", type=Path, default=None)
    ei.add_argument("--json", action="store_true")
    _db_arg(ei)
    ei.set_defaults(func=cmd_eval_identify)
    es = ev.add_parser("build-detect-sets", help="write the held-back detection sets that look like real photos "
                       "(close-ups, large pills, official photos, heaps, printed matter)")
    es.add_argument("out", type=Path)
    es.add_argument("--shared", type=Path, default=config.REPO_ROOT.parent / "shared" / "data")
    es.add_argument("--work", type=Path, default=config.REPO_ROOT / "work", help="where the cut-outs are cached")
    es.add_argument("-n", type=int, default=100, help="photos per set (heaps and printed: half)")
    es.add_argument("--seed", type=int, default=0)
    _db_arg(es)
    es.set_defaults(func=cmd_build_detect_sets)

    eb = ev.add_parser("build-identify-set", help="write the held-out identification set (photo-like)")
    eb.add_argument("out", type=Path)
    eb.add_argument("--shared", type=Path, default=config.REPO_ROOT.parent / "shared" / "data")
    eb.add_argument("--work", type=Path, default=config.REPO_ROOT / "work")
    eb.add_argument("--photo", type=int, default=300)
    eb.add_argument("--rendered", type=int, default=200)
    eb.add_argument("--multi", type=int, default=60, help="photos with 3-6 pills at true relative size")
    eb.add_argument("--pairs", type=int, default=150, help="pills shown on both sides, two photos each (per kind)")
    eb.add_argument("--realistic", type=int, default=0,
                    help="table photos of real faces as phones take them (1-6 pills at 200-600 px, strong and mixed "
                         "light, gloss, shadows, tilt): subset real-like")
    eb.add_argument("--exclude", type=Path, nargs="*", default=[], help="leave out the products of these labels.csv")
    eb.add_argument("--seed", type=int, default=0)
    _db_arg(eb)
    eb.set_defaults(func=cmd_build_identify_set)

    tr = sub.add_parser("train", help="train a model (needs the [train] extra)").add_subparsers(dest="train_cmd",
                                                                                                 required=True)
    td = tr.add_parser("detector", help="build the synthetic+real dataset, train YOLO from scratch, export ONNX")
    td.add_argument("--shared", type=Path, default=config.REPO_ROOT.parent / "shared" / "data")
    td.add_argument("--work", type=Path, default=config.REPO_ROOT / "work", help="datasets, cut-outs and runs")
    td.add_argument("--output", type=Path, default=config.MODELS_DIR / "detector.onnx")
    td.add_argument("--synthetic", type=int, default=1000, help="synthetic training scenes")
    td.add_argument("--piles", type=int, default=0, help="extra synthetic training scenes that are piles of 10-30 pills")
    td.add_argument("--spread", type=int, default=0, help="scenes of pills at any size (1.5-90%% of the frame)")
    td.add_argument("--heaps", type=int, default=0, help="heaps of 20-150 pills of one product, heavily overlapping")
    td.add_argument("--printed", type=int, default=0, help="pill-free scenes of printed text, rulers, logos, foil")
    td.add_argument("--closeups", type=int, default=0, help="close-ups cut from the real training photos")
    td.add_argument("--official", type=int, default=0, help="official catalog photos of training products")
    td.add_argument("--real-repeat", type=int, default=2, help="times each real training photo is in the training set")
    td.add_argument("--model", default="yolov8n.yaml",
                    help="architecture yaml, or a .pt / exported .onnx of ours to continue from")
    td.add_argument("--init", default=None,
                    help="weights (.pt / .onnx of ours) for the layers of an architecture yaml that match them")
    td.add_argument("--run", default="detector", help="run name under WORK/runs")
    td.add_argument("--threads", type=int, default=2)
    td.add_argument("--imgsz", type=int, default=416, help="training input size")
    td.add_argument("--export", choices=("best", "last"), default="best",
                    help="weights to export: best on the synthetic validation, or the last epoch (mosaic off)")
    td.add_argument("--serve-imgsz", type=int, default=None,
                    help="input size stored in the ONNX for serving (default: --imgsz; choose it with eval --imgsz)")
    td.add_argument("--serve-square", action="store_true",
                    help="store in the ONNX that it is served on square inputs (choose it with eval --square)")
    td.add_argument("--epochs", type=int, default=50)
    td.add_argument("--batch", type=int, default=16)
    td.add_argument("--lr0", type=float, default=None, help="fine-tune a trained model: AdamW at this rate, no warm-up")
    td.add_argument("--close-mosaic", type=int, default=3,
                    help="the last N epochs without mosaic (N >= epochs: no mosaic at all)")
    td.add_argument("--seed", type=int, default=0)
    td.add_argument("--scenes-round", type=int, default=0,
                    help="N > 0: draw fresh training scenes for a further leg; validation and held-back sets unchanged")
    td.add_argument("--device", default="cpu", help="cpu, or a CUDA index such as 0")
    td.add_argument("--workers", type=int, default=0, help="data-loader processes (several feed a GPU)")
    td.add_argument("--hours", type=float, default=None, help="train for this wall-clock time instead of --epochs")
    td.add_argument("--cache", action="store_true", help="hold the decoded training images in RAM")
    td.add_argument("--rebuild", action="store_true", help="rebuild the dataset even if it exists")
    td.add_argument("--resume", action="store_true", help="continue an interrupted run from last.pt")
    _db_arg(td)
    td.set_defaults(func=cmd_train_detector)
    ta = tr.add_parser("appearance", help="train the shape/colour/form/score-line model, export ONNX")
    ta.add_argument("--shared", type=Path, default=config.REPO_ROOT.parent / "shared" / "data")
    ta.add_argument("--work", type=Path, default=config.REPO_ROOT / "work")
    ta.add_argument("--output", type=Path, default=config.MODELS_DIR / "appearance.onnx")
    ta.add_argument("--epochs", type=int, default=14)
    ta.add_argument("--seed", type=int, default=0)
    ta.add_argument("--threads", type=int, default=2)
    _db_arg(ta)
    ta.set_defaults(func=cmd_train_appearance)
    tm = tr.add_parser("measure", help="train the colour/shape model on the segmented pill's statistics, export ONNX")
    tm.add_argument("--shared", type=Path, default=config.REPO_ROOT.parent / "shared" / "data")
    tm.add_argument("--work", type=Path, default=config.REPO_ROOT / "work")
    tm.add_argument("--output", type=Path, default=config.MODELS_DIR / "measure.onnx")
    tm.add_argument("--appearance", type=Path, default=config.MODELS_DIR / "appearance.onnx",
                    help="the appearance CNN it is served with (metrics for both together)")
    tm.add_argument("--epochs", type=int, default=60)
    tm.add_argument("--views", type=int, default=2, help="photo-like views of each real training face")
    tm.add_argument("--room", type=float, default=0.0,
                    help="share of the views lit as a room lights them (strong, mixed colour casts; gloss)")
    tm.add_argument("--seed", type=int, default=0)
    tm.add_argument("--threads", type=int, default=2)
    _db_arg(tm)
    tm.set_defaults(func=cmd_train_measure)
    tb = tr.add_parser("box-check", help="train the check of the detector's boxes (whole pill or not), export ONNX")
    tb.add_argument("folders", nargs="+", type=Path,
                    help="scene folders of `train detector` (YOLO images/ and labels/ of training products)")
    tb.add_argument("--output", type=Path, default=config.MODELS_DIR / "box_check.onnx")
    tb.add_argument("--heaps", type=int, default=250, help="heap scenes per folder (their pills are alike)")
    tb.add_argument("--served-scenes", type=Path,
                    help="photos of training products at the app's working size (printed pages, official photos, "
                         "large tablets, close-ups), written here when absent, harvested beside the folders")
    tb.add_argument("--shared", type=Path, default=config.REPO_ROOT.parent / "shared" / "data")
    tb.add_argument("--work", type=Path, default=config.REPO_ROOT / "work",
                    help="where the cut-outs are cached (WORK/cutouts, as for `train detector`)")
    tb.add_argument("--samples", type=Path, help="the harvested boxes (.npz): read when it exists, else written")
    tb.add_argument("--epochs", type=int, default=10)
    tb.add_argument("--seed", type=int, default=0)
    tb.add_argument("--threads", type=int, default=2)
    _db_arg(tb)
    tb.set_defaults(func=cmd_train_box_check)
    ti = tr.add_parser("imprint", help="train the imprint recognizer (CRNN on the catalog alphabet), export ONNX")
    ti.add_argument("--shared", type=Path, default=config.REPO_ROOT.parent / "shared" / "data")
    ti.add_argument("--work", type=Path, default=config.REPO_ROOT / "work")
    ti.add_argument("--output", type=Path, default=config.MODELS_DIR / "imprint_crnn.onnx")
    ti.add_argument("--epochs", type=int, default=10)
    ti.add_argument("--views", type=int, default=5, help="photo-like views of each real training face")
    ti.add_argument("--rendered", type=int, default=10000, help="drawn training faces")
    ti.add_argument("--seed", type=int, default=0)
    ti.add_argument("--threads", type=int, default=1)
    ti.add_argument("--init", type=Path, help="fine-tune this PP-OCR recognizer (ONNX) instead of a CRNN from scratch")
    ti.add_argument("--lr", type=float, help="peak learning rate (default 2e-3 from scratch, 3e-4 fine-tuning)")
    ti.add_argument("--hangul", type=int, default=0,
                    help="drawn faces with Hangul imprints; with any, the alphabet has the catalog's Hangul syllables "
                         "(needs Debian's fonts-nanum)")
    _db_arg(ti)
    ti.set_defaults(func=cmd_train_imprint)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from pillcheck.catalog.db import CatalogError, CatalogMissing
    from pillcheck.catalog.readers import DataFileError
    from pillcheck.catalog.sources import UpdateError
    from pillcheck.images import InputError
    from pillcheck.inference.session import ModelError

    try:
        return args.func(args)
    except (UserError, DataFileError, CatalogMissing, CatalogError, UpdateError, ModelError, InputError) as exc:
        print(f"pillcheck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pillcheck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
