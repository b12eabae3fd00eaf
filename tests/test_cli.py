"""The command line: `gencodec compress / decompress / info`, called in-process through main(),
and how the tools' commands join it (help, missing optional packages).

Subprocess tests at the end prove the console script, `python -m gencodec`
and stdin/stdout piping work for real, and that the runtime's commands never
import the tools.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gencodec import bitstream
from gencodec.cli import main

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL = ["--model", "untrained", "--device", "cpu"]
WARNING = "warning: model 'untrained' is untrained: files round-trip, but pictures are not meaningful"


# -- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_array() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (40, 48, 3), dtype=np.uint8)


@pytest.fixture
def png(tmp_path, image_array) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(image_array).save(path)
    return path


@pytest.fixture(scope="module")
def gcz_bytes(untrained_codec, image_array) -> bytes:
    return untrained_codec.compress(image_array, level=2)


@pytest.fixture
def gcz(tmp_path, gcz_bytes) -> Path:
    path = tmp_path / "photo.gcz"
    path.write_bytes(gcz_bytes)
    return path


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    """A saved model with another fingerprint than 'untrained'."""
    from gencodec.pretrained import untrained_model
    folder = tmp_path_factory.mktemp("other_model")
    untrained_model(latent_channels=64).save_pretrained(folder)
    return folder


def run(capsysbinary, *argv, stdin: bytes | None = None, monkeypatch=None):
    """main(argv) -> (exit code, stdout bytes, stderr text)."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main([str(a) for a in argv])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def assert_one_line_error(code: int, out: bytes, err: str, *fragments: str) -> str:
    assert code == 1
    assert out == b""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gencodec: error: ")
    message = lines[0].lower()
    assert any(f in message for f in fragments) if fragments else True, lines[0]
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- round trip -------------------------------------------------------------------------------

def test_compress_info_decompress_round_trip(capsysbinary, tmp_path, png, untrained_codec, image_array):
    gcz, out_png = tmp_path / "x.gcz", tmp_path / "x_out.png"

    code, out, err = run(capsysbinary, "compress", png, "-o", gcz, "--level", 3, *MODEL)
    assert code == 0 and out == b""  # stdout may carry data: the summary goes to stderr
    data = gcz.read_bytes()
    assert data == untrained_codec.compress(image_array, level=3)
    assert err.splitlines() == [WARNING, f"{png} -> {gcz}: {len(data)} bytes, "
                                         f"{8 * len(data) / (48 * 40):.4f} bpp, level 3, 48x40"]

    code, out, err = run(capsysbinary, "info", gcz)
    assert code == 0 and err == ""  # no model given: none loaded, no warning
    report = out.decode()
    for line in (f"bytes:       {len(data)}", f"bpp:         {8 * len(data) / (48 * 40):.4f}",
                 "level:       3", "size:        48x40", f"version:     {bitstream.FORMAT_VERSION}",
                 f"fingerprint: {untrained_codec.fingerprint16:04x}"):
        assert line in report.splitlines()
    assert "model:" not in report

    code, out, err = run(capsysbinary, "info", gcz, *MODEL)
    assert code == 0 and "matches" in out.decode() and err.splitlines() == [WARNING]

    code, out, err = run(capsysbinary, "decompress", gcz, "-o", out_png, *MODEL)
    assert code == 0 and out == b""
    assert err.splitlines() == [WARNING, f"{gcz} -> {out_png}: 48x40, level 3, PNG"]
    with Image.open(out_png) as img:
        assert img.format == "PNG" and img.size == (48, 40)
        assert np.array_equal(np.asarray(img), np.asarray(untrained_codec.decompress(data)))
    assert leftovers(tmp_path) == []


def test_output_format_follows_the_suffix(capsysbinary, tmp_path, gcz):
    code, _, _ = run(capsysbinary, "decompress", gcz, "-o", tmp_path / "out.jpg", *MODEL)
    assert code == 0
    with Image.open(tmp_path / "out.jpg") as img:
        assert img.format == "JPEG" and img.size == (48, 40)


def test_unknown_output_suffix_is_an_error(capsysbinary, tmp_path, gcz):
    assert_one_line_error(*run(capsysbinary, "decompress", gcz, "-o", tmp_path / "out.xyz", *MODEL), "suffix")
    assert not (tmp_path / "out.xyz").exists()


# -- stdin and stdout ------------------------------------------------------------------------

def test_stdin_and_stdout(capsysbinary, monkeypatch, png, untrained_codec, image_array):
    code, out, err = run(capsysbinary, "compress", "-", "-o", "-", "-l", 1, *MODEL,
                         stdin=png.read_bytes(), monkeypatch=monkeypatch)
    assert code == 0
    assert out == untrained_codec.compress(image_array, level=1)
    assert err.splitlines()[-1].startswith("<stdin> -> <stdout>: ")
    data = out

    code, out, err = run(capsysbinary, "info", "-", stdin=data, monkeypatch=monkeypatch)
    assert code == 0 and "level:       1" in out.decode() and "file:        <stdin>" in out.decode()

    code, out, err = run(capsysbinary, "decompress", "-", "-o", "-", *MODEL, stdin=data, monkeypatch=monkeypatch)
    assert code == 0
    assert out.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(out)) as img:
        assert img.size == (48, 40)
        assert np.array_equal(np.asarray(img), np.asarray(untrained_codec.decompress(data)))


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_stdin_needs_an_output(capsysbinary, monkeypatch, command):
    code, out, err = run(capsysbinary, command, "-", *MODEL, stdin=b"", monkeypatch=monkeypatch)
    assert code == 2 and out == b"" and "-o" in err and "Traceback" not in err


# -- default output names and overwriting -------------------------------------------------------

def test_default_output_names(capsysbinary, tmp_path, png, untrained_codec):
    code, _, err = run(capsysbinary, "compress", png, *MODEL)
    assert code == 0, err
    assert (tmp_path / "photo.gcz").is_file()

    (tmp_path / "photo.gcz").rename(tmp_path / "copy.gcz")
    code, _, err = run(capsysbinary, "decompress", tmp_path / "copy.gcz", *MODEL)
    assert code == 0, err
    with Image.open(tmp_path / "copy.png") as img:
        assert img.size == (48, 40)


def test_refuses_to_overwrite_without_force(capsysbinary, tmp_path, png, gcz):
    gcz.write_bytes(b"keep me")
    assert_one_line_error(*run(capsysbinary, "compress", png, "-o", gcz, *MODEL), "already exists")
    assert gcz.read_bytes() == b"keep me"

    assert run(capsysbinary, "compress", png, "-o", gcz, "--force", *MODEL)[0] == 0
    data = gcz.read_bytes()
    assert data[0] == bitstream.MAGIC

    # decompress's default output (photo.png) is the original image: refused, then -f replaces it
    before = png.read_bytes()
    assert_one_line_error(*run(capsysbinary, "decompress", gcz, *MODEL), "already exists")
    assert png.read_bytes() == before
    assert run(capsysbinary, "decompress", gcz, "-f", *MODEL)[0] == 0
    assert png.read_bytes() != before
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_no_partial_output(capsysbinary, monkeypatch, tmp_path, png):
    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    target = tmp_path / "x.gcz"
    assert_one_line_error(*run(capsysbinary, "compress", png, "-o", target, *MODEL), "no space left")
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_an_output_that_appears_while_writing_is_kept(capsysbinary, monkeypatch, tmp_path, png):
    target = tmp_path / "x.gcz"
    real_fsync = os.fsync

    def racing_fsync(fd):
        target.write_bytes(b"someone else's")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", racing_fsync)
    assert_one_line_error(*run(capsysbinary, "compress", png, "-o", target, *MODEL), "already exists", "--force")
    assert target.read_bytes() == b"someone else's"
    assert leftovers(tmp_path) == []


def test_missing_output_folder(capsysbinary, tmp_path, png):
    assert_one_line_error(*run(capsysbinary, "compress", png, "-o", tmp_path / "nope" / "x.gcz", *MODEL),
                          "does not exist")


# -- bad input ----------------------------------------------------------------------------------

def test_level_out_of_range(capsysbinary, tmp_path, png):
    for level in (8, -1):  # 8: the untrained model has levels 0..7; -1 fails before a model loads
        assert_one_line_error(*run(capsysbinary, "compress", png, "-o", tmp_path / "x.gcz", "--level", level,
                                   *MODEL), "out of range")
    assert not (tmp_path / "x.gcz").exists()


def test_level_must_be_an_integer(capsysbinary, png):
    code, out, err = run(capsysbinary, "compress", png, "--level", "high", *MODEL)
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize("command", ["compress", "decompress", "info"])
def test_missing_input(capsysbinary, tmp_path, command):
    assert_one_line_error(*run(capsysbinary, command, tmp_path / "missing.file", *MODEL), "no such file")


@pytest.mark.parametrize("command", ["compress", "decompress", "info"])
def test_a_directory_as_input(capsysbinary, tmp_path, command):
    """info reads one file; compress and decompress take a folder's files, and so need --out-dir."""
    folder = tmp_path / "folder.png"
    folder.mkdir()
    if command == "info":
        assert_one_line_error(*run(capsysbinary, command, folder, *MODEL), "directory")
    else:
        code, _, err = run(capsysbinary, command, folder, *MODEL)
        assert code == 2 and "need --out-dir DIR" in err


def test_a_non_image_input(capsysbinary, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    assert_one_line_error(*run(capsysbinary, "compress", text, *MODEL), "not a recognised image")
    assert not (tmp_path / "notes.gcz").exists()


def test_a_non_image_on_stdin(capsysbinary, monkeypatch, tmp_path):
    assert_one_line_error(*run(capsysbinary, "compress", "-", "-o", tmp_path / "x.gcz", *MODEL,
                               stdin=b"GIF89a nonsense", monkeypatch=monkeypatch), "cannot read image")


@pytest.mark.parametrize("command", ["decompress", "info"])
def test_truncated_file(capsysbinary, tmp_path, gcz_bytes, command):
    bad = tmp_path / "bad.gcz"
    for data in (gcz_bytes[:-1], gcz_bytes[:-4], gcz_bytes[:5]):
        bad.write_bytes(data)
        assert_one_line_error(*run(capsysbinary, command, bad, *MODEL), "corrupt", "truncat")
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("command", ["decompress", "info"])
def test_not_a_gcz_file(capsysbinary, png, tmp_path, command):
    assert_one_line_error(*run(capsysbinary, command, png, *MODEL), "not a gencodec file", "already exists")
    assert_one_line_error(*run(capsysbinary, command, png, *MODEL, *(["-f"] if command == "decompress" else [])),
                          "not a gencodec file")


def test_a_file_from_another_model(capsysbinary, tmp_path, png, other_model_dir):
    gcz = tmp_path / "other.gcz"
    code, _, err = run(capsysbinary, "compress", png, "-o", gcz, "--model", other_model_dir, "--device", "cpu")
    assert code == 0, err

    assert_one_line_error(*run(capsysbinary, "decompress", gcz, *MODEL), "another model")
    assert not (tmp_path / "other.png").exists()

    code, out, err = run(capsysbinary, "info", gcz, *MODEL)  # info reports the header, and exits 1
    assert code == 1 and "does NOT match" in out.decode() and "another model" in out.decode()
    code, out, err = run(capsysbinary, "info", gcz, "--model", other_model_dir, "--device", "cpu")
    assert code == 0 and "matches" in out.decode()


def test_the_shipped_default_model_is_used_without_model(capsysbinary, png, tmp_path):
    code, _, err = run(capsysbinary, "compress", png, "--device", "cpu", "--level", "0")
    assert code == 0, err
    gcz = png.with_suffix(".gcz")
    code, _, err = run(capsysbinary, "decompress", gcz, "-o", tmp_path / "back.png", "--steps", "1")
    assert code == 0, err
    assert Image.open(tmp_path / "back.png").size == Image.open(png).size


def test_a_missing_default_model_is_one_line(capsysbinary, png, tmp_path, monkeypatch):
    monkeypatch.setattr("gencodec.pretrained.SHIPPED_DIR", tmp_path / "nothing")
    assert_one_line_error(*run(capsysbinary, "compress", png, "--device", "cpu"), "--model")
    assert not png.with_suffix(".gcz").exists()


def test_cuda_when_unavailable(capsysbinary, png):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_one_line_error(*run(capsysbinary, "compress", png, "--model", "untrained", "--device", "cuda"), "cuda")


def test_keyboard_interrupt_exits_130_quietly(capsysbinary, monkeypatch, gcz):
    def interrupted(data):
        raise KeyboardInterrupt

    monkeypatch.setattr(bitstream, "peek_header", interrupted)
    code, out, err = run(capsysbinary, "info", gcz)
    assert code == 130 and out == b"" and err == ""


# -- help and version -----------------------------------------------------------------------------

def test_top_level_help(capsysbinary):
    code, out, _ = run(capsysbinary, "--help")
    text = out.decode()
    assert code == 0
    assert "level 0 gives the smallest file" in text.lower()
    assert ".gcz" in text and "fingerprint" in text and "example" in text


@pytest.mark.parametrize("command", ["compress", "decompress", "info"])
def test_subcommand_help(capsysbinary, command):
    code, out, _ = run(capsysbinary, command, "--help")
    text = out.decode()
    assert code == 0
    assert "example:" in text and f"gencodec {command} " in text
    assert "--model" in text and "default" in text


TOOLS = ["demo", "bench", "eval", "report", "pack", "cache-latents", "app"]


def test_top_level_help_lists_every_command(capsysbinary):
    code, out, _ = run(capsysbinary, "--help")
    listed = [line.split()[0] for line in out.decode().splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert code == 0 and listed == ["compress", "decompress", "info", *TOOLS]


@pytest.mark.parametrize("command", TOOLS)
def test_tool_help(capsysbinary, command):
    code, out, _ = run(capsysbinary, command, "--help")
    text = out.decode()
    assert code == 0
    assert text.startswith(f"usage: gencodec {command} ") and "example:" in text and f"gencodec {command} " in text


def test_defaults_shown_by_pack_help_are_pack_shards(capsysbinary):
    from gencodec.training.data import DEFAULT_MAX_SHARD_BYTES, DEFAULT_QUALITY
    code, out, _ = run(capsysbinary, "pack", "--help")
    text = " ".join(out.decode().split())
    assert code == 0
    assert f"default: {DEFAULT_MAX_SHARD_BYTES / 1e6:g}" in text and f"default: {DEFAULT_QUALITY} with" in text


def test_version(capsysbinary):
    import gencodec
    code, out, _ = run(capsysbinary, "--version")
    assert code == 0 and out.decode().strip() == f"gencodec {gencodec.__version__}"


def test_no_command_is_a_usage_error(capsysbinary):
    code, _, err = run(capsysbinary)
    assert code == 2 and "usage:" in err


# -- the tools' optional packages ----------------------------------------------------------------

def test_report_without_matplotlib_names_the_extra(capsysbinary, monkeypatch, tmp_path):
    (tmp_path / "results.json").write_text('{"records": []}')
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    line = assert_one_line_error(*run(capsysbinary, "report", tmp_path), "optional package")
    assert "'gencodec report'" in line and "'matplotlib'" in line and "pip install 'gencodec[eval]'" in line
    assert not (tmp_path / "report.html").exists()


def test_pack_without_its_packages_names_the_extra(capsysbinary, monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "gencodec.training.data", raising=False)  # so that it is imported again
    monkeypatch.setitem(sys.modules, "torch.utils.data", None)
    line = assert_one_line_error(*run(capsysbinary, "pack", tmp_path, tmp_path / "shards"), "optional package")
    assert "'gencodec pack'" in line and "'torch'" in line and "pip install 'gencodec[train]'" in line
    assert not (tmp_path / "shards").exists()


# -- real processes ------------------------------------------------------------------------------

def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_pipe_between_two_processes(tmp_path, png, untrained_codec, image_array):
    """`gencodec compress - -o - < png | python -m gencodec decompress - -o -`, both processes at once."""
    script = Path(sys.executable).with_name("gencodec")
    compress = [str(script)] if script.is_file() else [sys.executable, "-m", "gencodec"]
    with open(png, "rb") as stdin:
        first = subprocess.Popen([*compress, "compress", "-", "-o", "-", "--level", "2", *MODEL],
                                 stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        second = subprocess.Popen([sys.executable, "-m", "gencodec", "decompress", "-", "-o", "-", *MODEL],
                                  stdin=first.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        first.stdout.close()  # so the second sees EOF when the first ends
        out, err2 = second.communicate(timeout=120)
        err1 = first.stderr.read()
        first.wait(timeout=120)
        first.stderr.close()
    assert first.returncode == 0, err1.decode()
    assert second.returncode == 0, err2.decode()
    assert err1.decode().splitlines()[-1].startswith("<stdin> -> <stdout>: ")
    expected = untrained_codec.decompress(untrained_codec.compress(image_array, level=2))
    with Image.open(io.BytesIO(out)) as img:
        assert np.array_equal(np.asarray(img), np.asarray(expected))


def test_runtime_commands_import_no_tools(tmp_path, png):
    """compress, decompress and info build only their own parsers and never import training, evaluation or the
    app."""
    gcz, out = str(tmp_path / "x.gcz"), str(tmp_path / "x_out.png")
    script = f"""
import sys
from gencodec.cli import main
model = {MODEL!r}
assert main(["compress", {str(png)!r}, "-o", {gcz!r}, "--level", "1", *model]) == 0
assert main(["info", {gcz!r}]) == 0
assert main(["decompress", {gcz!r}, "-o", {out!r}, *model]) == 0
tools = [m for m in sys.modules if m.split(".")[:2] in (["gencodec", "training"], ["gencodec", "evaluation"],
                                                       ["gencodec", "app"])]
assert not tools, tools
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert Path(out).is_file() and "fingerprint:" in result.stdout


# -- failing fast -------------------------------------------------------------------------------

def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded before the input and output were checked")


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p.write_bytes(b"not an image at all"), "cannot read image"),
    (lambda p: Image.new("RGB", (8, 8)).save(p, format="GIF", save_all=True,
                                            append_images=[Image.new("RGB", (8, 8), "red")]), "has 2 frames"),
    (lambda p: Image.new("RGB", (8, 8)).save(p, format="PNG"), "is a directory"),  # the output is a folder
])
def test_compress_checks_input_and_output_before_loading_the_model(capsysbinary, tmp_path, monkeypatch, make,
                                                                   fragment):
    monkeypatch.setattr("gencodec.cli.common.load_codec", _no_model)
    source = tmp_path / "in.png"
    make(source)
    output = tmp_path if fragment == "is a directory" else tmp_path / "out.gcz"
    assert_one_line_error(*run(capsysbinary, "compress", source, "-o", output, *MODEL), fragment)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to any folder")
def test_an_unwritable_output_folder_fails_before_the_model_loads(capsysbinary, tmp_path, png, monkeypatch):
    monkeypatch.setattr("gencodec.cli.common.load_codec", _no_model)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_one_line_error(*run(capsysbinary, "compress", png, "-o", locked / "x.gcz", *MODEL), "not writable")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("stdin", [False, True])
def test_the_pixel_budget_refuses_an_image_before_the_model_loads(capsysbinary, tmp_path, monkeypatch, png,
                                                                  image_array, stdin):
    monkeypatch.setattr("gencodec.cli.common.load_codec", _no_model)
    h, w = image_array.shape[:2]
    budget = ("--max-pixels", str(h * w - 1))
    if stdin:
        result = run(capsysbinary, "compress", "-", "-o", tmp_path / "x.gcz", *budget, *MODEL,
                     stdin=png.read_bytes(), monkeypatch=monkeypatch)
    else:
        result = run(capsysbinary, "compress", png, "-o", tmp_path / "x.gcz", *budget, *MODEL)
    assert_one_line_error(*result, f"{w}x{h} = {h * w:,} pixels; the pixel budget is {h * w - 1:,}")
    assert not (tmp_path / "x.gcz").exists()


def test_the_pixel_budget_refuses_a_file_claiming_a_huge_image_before_the_model_loads(capsysbinary, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setattr("gencodec.cli.common.load_codec", _no_model)
    forged = tmp_path / "huge.gcz"
    forged.write_bytes(bitstream.pack_file(bitstream.Header(level=0, fingerprint=1, width=16384, height=16384),
                                           b"abcd"))
    assert_one_line_error(*run(capsysbinary, "decompress", forged, "-o", tmp_path / "x.png", *MODEL),
                          "16384x16384 = 268,435,456 pixels; the pixel budget is 67,108,864")


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_the_pixel_budget_must_be_a_positive_integer(capsysbinary, png, value):
    code, _, err = run(capsysbinary, "compress", png, "--max-pixels", value)
    assert code == 2 and "expected a positive integer" in err
