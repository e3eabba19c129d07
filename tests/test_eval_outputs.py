"""A benchmark's --out OUT gives OUT.json / OUT.md / OUT.png beside it, whatever dots OUT's name holds."""

from pathlib import Path

from hfldm.eval.outputs import output_file


def test_output_files_keep_dots_in_the_name():
    assert output_file("runs/eval/inpaint_w1.5", ".json") == Path("runs/eval/inpaint_w1.5.json")
    assert output_file(Path("docs/sweep"), ".png") == Path("docs/sweep.png")
    assert Path("runs/eval/inpaint_w1.5").with_suffix(".json").name == "inpaint_w1.json"  # what it avoids
