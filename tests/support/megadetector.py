"""The MegaDetector batch-output format's rules, as its description states them.

Source: agentmorris/MegaDetector, megadetector-output-format.md (format version 1.6) and the checks of
its validator (megadetector/postprocessing/validate_batch_results.py), restated here because the
package that ships that validator pulls in OpenCV, matplotlib and scikit-learn.
"""

from __future__ import annotations

from typing import Any

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".wmv", ".webm", ".mts", ".m2ts", ".ts", ".3gp")


def _category_map(doc: dict[str, Any], key: str, errors: list[str]) -> dict[str, str]:
    cats = doc.get(key)
    if not isinstance(cats, dict):
        errors.append(f"{key}: not an object")
        return {}
    for cid, name in cats.items():
        if not (isinstance(cid, str) and cid.isdigit()):
            errors.append(f"{key}: id {cid!r} is not a string-formatted non-negative int")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{key}[{cid}]: blank or not a string")
    return cats


def _detection(where: str, det: Any, detection_ids: dict, class_ids: dict, video: bool, errors: list[str]) -> None:
    if not isinstance(det, dict):
        errors.append(f"{where}: not an object")
        return
    if det.get("category") not in detection_ids:
        errors.append(f"{where}.category {det.get('category')!r} not in detection_categories")
    conf = det.get("conf")
    if not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
        errors.append(f"{where}.conf {conf!r} not in 0..1")
    bbox = det.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) and 0 <= v <= 1
                                                              for v in bbox)):
        errors.append(f"{where}.bbox {bbox!r} is not [x_min, y_min, width, height] relative to the image")
    classifications = det.get("classifications")
    if classifications is not None:
        confs = []
        for c in classifications:
            if not (isinstance(c, list) and len(c) == 2 and c[0] in class_ids and 0 <= c[1] <= 1):
                errors.append(f"{where}.classifications: bad entry {c!r}")
            else:
                confs.append(c[1])
        if confs != sorted(confs, reverse=True):
            errors.append(f"{where}.classifications: not in descending order of confidence")
    if video and not (isinstance(det.get("frame_number"), int) and det["frame_number"] >= 0):
        errors.append(f"{where}: a video detection needs an int frame_number >= 0")


def format_errors(doc: dict[str, Any]) -> list[str]:
    """Every way ``doc`` breaks the format (empty when it follows it)."""
    errors: list[str] = []
    info = doc.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("format_version"), str):
        errors.append("info.format_version: required, a string-formatted float")
    detection_ids = _category_map(doc, "detection_categories", errors)
    class_ids = _category_map(doc, "classification_categories", errors) if "classification_categories" in doc else {}
    images = doc.get("images")
    if not isinstance(images, list):
        return errors + ["images: required, a list"]
    for i, im in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(im, dict) or not isinstance(im.get("file"), str):
            errors.append(f"{where}: an object with a file")
            continue
        if im.get("failure") is not None:
            if im.get("detections") is not None:
                errors.append(f"{where}: a failure with a non-null detections list")
            continue
        if not isinstance(im.get("detections"), list):
            errors.append(f"{where}: processed files need a detections list (empty when none)")
            continue
        video = im["file"].lower().endswith(VIDEO_SUFFIXES) or "frame_rate" in im
        if video:
            if not (isinstance(im.get("frame_rate"), (int, float)) and im["frame_rate"] > 0):
                errors.append(f"{where}: a video needs frame_rate > 0")
            if not (isinstance(im.get("frames_processed"), list)
                    and all(isinstance(n, int) for n in im["frames_processed"])):
                errors.append(f"{where}: a video needs frames_processed, a list of ints")
        for j, det in enumerate(im["detections"]):
            _detection(f"{where}.detections[{j}]", det, detection_ids, class_ids, video, errors)
    return errors
