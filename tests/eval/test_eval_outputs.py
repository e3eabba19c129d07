"""A benchmark's --out OUT gives OUT.json / OUT.md / OUT.png beside it, whatever dots OUT's name holds; a bad
argument ends it with exit code 2 and one line."""

from pathlib import Path

import pytest

from hfldm.eval.outputs import output_file, run_benchmark


def test_output_files_keep_dots_in_the_name():
    assert output_file("runs/eval/inpaint_w1.5", ".json") == Path("runs/eval/inpaint_w1.5.json")
    assert output_file(Path("docs/sweep"), ".png") == Path("docs/sweep.png")
    assert Path("runs/eval/inpaint_w1.5").with_suffix(".json").name == "inpaint_w1.json"  # what it avoids


def _fails():
    raise FileNotFoundError("--model: no folder runs/missing\n(a second line)")


def test_run_benchmark_exits_with_mains_code_and_one_line_on_a_user_error(capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["guidance_sweep.py"])
    monkeypatch.delenv("HFLDM_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as done:
        run_benchmark(lambda: None)
    assert done.value.code is None  # exit 0
    with pytest.raises(SystemExit) as failed:
        run_benchmark(_fails)
    assert failed.value.code == 2
    assert capsys.readouterr().err == "guidance_sweep.py: error: --model: no folder runs/missing\n"


def test_run_benchmark_leaves_other_errors_and_keeps_tracebacks_on_request(monkeypatch):
    with pytest.raises(RuntimeError):  # not a user error unless the script says so
        run_benchmark(lambda: (_ for _ in ()).throw(RuntimeError("bug")))
    with pytest.raises(SystemExit):
        run_benchmark(lambda: (_ for _ in ()).throw(RuntimeError("no toolchain")), (RuntimeError,))
    monkeypatch.setenv("HFLDM_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError):
        run_benchmark(_fails)
