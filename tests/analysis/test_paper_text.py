import copy
import json

from gemmalab.analysis import paper_text
from gemmalab.analysis.robustness import kind

from ..conftest import REPO


def test_publishing_says_which_verdicts_moved_since_the_findings_it_replaces(tmp_path):
    before = json.loads((REPO / "findings.json").read_text())
    after = copy.deepcopy(before)
    moved = after["claims"][0]
    was = kind(moved["verdict"])
    moved["verdict"] = "supported" if was == "contradicted" else "contradicted"
    moved["n"] = 8
    gone = after["claims"].pop()
    after["claims"].append({**after["claims"][1], "id": "brand-new"})
    (tmp_path / "findings.json").write_text(json.dumps(before))

    paper_text.publish(tmp_path, json.dumps(after), "# findings\n", after)
    text = (tmp_path / "FINDINGS.md").read_text()
    assert text.startswith("# findings\n") and "## Since the findings published before" in text
    assert f"- `{moved['id']}`: {was} (" in text and f"-> {moved['verdict']} (" in text and "n=8)" in text
    assert "- `brand-new`: new, " in text and f"- `{gone['id']}`: no longer a claim (was " in text
    assert f"{len(before['claims']) - 2} verdicts kept their kind; moved:" in text
    assert json.loads((tmp_path / "findings.json").read_text()) == after

    paper_text.publish(tmp_path, json.dumps(after), "# findings\n", after)  # the same findings again
    assert "- none" in (tmp_path / "FINDINGS.md").read_text()
