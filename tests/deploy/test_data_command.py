"""`sam3v data ...` is `python -m sam3_video.data ...` under the one command."""
from __future__ import annotations

import json

from deploy.cli import main


def test_sam3v_data_imports_and_validates(tmp_path, capsys):
    from tests.data.test_importers import write_davis

    write_davis(tmp_path / "src", videos=("bear",))
    assert main(["data", "import", "davis", str(tmp_path / "src"), str(tmp_path / "out"),
                 "--phrase", "animal"]) == 0
    assert "imported davis: 1 videos" in capsys.readouterr().out
    assert main(["data", "validate", str(tmp_path / "out")]) == 0
    names = [c["name"] for c in json.loads((tmp_path / "out/annotations.json").read_text())["categories"]]
    assert names == ["animal"]
    assert main(["data", "validate", str(tmp_path / "missing")]) == 1
