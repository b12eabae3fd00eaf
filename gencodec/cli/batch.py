"""`gencodec compress` and `decompress` over many files: one model load, a manifest, resumable, N workers.

The inputs (files, folders, globs, @lists and webdataset shards:
gencodec.collection) are done in order, each written atomically below --out-dir in the input's layout, each
recorded in the manifest (gencodec.manifest) as it is done. A bad input is
recorded with its one-line error and the run goes on; the command ends with a
summary line, and exit status 1 if any input failed. Started again with the
same command, a run skips every input its manifest records (unless its output
has gone since) and does the rest; --force starts over. With --workers N, N processes (each with its share of
the CPU's threads) take every N-th input; under `accelerate launch -m gencodec`
the processes, GPUs or nodes accelerate starts do.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import multiprocessing
import os
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

from gencodec import manifest as manifest_file
from gencodec.cli import common
from gencodec.cli.common import EXIT_ERROR, EXIT_OK, GencodecError
from gencodec.collection import SHARD_SUFFIX, Item, expand_inputs
from gencodec.constants import IMAGE_SUFFIXES, SUFFIX
from gencodec.fileio import atomic_output

# The options a worker needs, copied out of the parsed arguments (which hold the parser: not picklable).
_OPTIONS = ("command", "out_dir", "level", "bpp", "max_bytes", "realism", "steps", "seed", "scheduler",
            "max_pixels", "model", "device", "workers", "batch_size", "search_steps")


def is_batch(args: argparse.Namespace) -> bool:
    """Whether the command works on many files: several inputs, a folder, a glob, a list, or --out-dir."""
    spec = args.input[0]
    return (args.out_dir is not None or len(args.input) > 1 or spec.startswith("@") or Path(spec).is_dir()
            or (not Path(spec).exists() and any(c in spec for c in "*?[")))


def _output(options: dict, item: Item) -> Path:
    if item.source.suffix.lower() == SHARD_SUFFIX:
        return Path(options["out_dir"]) / item.relative  # a shard of the same name
    suffix = SUFFIX if options["command"] == "compress" else ".png"
    return Path(options["out_dir"]) / item.relative.with_suffix(suffix)


def _prepare(args: argparse.Namespace) -> tuple[list[Item], Path]:
    """The inputs and the manifest, checked before any model loads."""
    if args.output is not None:
        args.subparser.error("-o names one output; with several inputs give --out-dir")
    if args.out_dir is None:
        args.subparser.error("several inputs (or a folder, a glob, a list) need --out-dir DIR")
    items = expand_inputs(args.input, IMAGE_SUFFIXES if args.command == "compress" else (SUFFIX,))
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GencodecError(f"--out-dir {common.label(out_dir)} is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GencodecError(f"cannot make --out-dir {common.label(out_dir)}: {common.os_error_message_short(exc)}") from exc
    manifest = out_dir / "manifest.jsonl"
    if not args.force and not manifest_file.recorded(manifest):
        options = vars(args)
        clash = next((item for item in items if _output(options, item).exists()), None)
        if clash is not None:
            raise GencodecError(f"output {common.label(_output(options, clash))} already exists and no manifest "
                                "there says this run wrote it; use --force to overwrite")
    return items, manifest


def _start_over(manifest: Path) -> None:
    """--force: forget what the manifest recorded."""
    for path in [manifest, *manifest.parent.glob(f"{manifest.name}.part-*")]:
        path.unlink()


def _fields(codec, data: bytes, out: bytes) -> dict:
    """A done input's record fields; bytes and bpp are the compressed file's (`data`: what compress wrote,
    or what decompress read), sha256 the output's."""
    info = codec.info(data)
    return {"bytes": info.bytes, "bpp": round(info.bpp, 6), "level": info.level, "width": info.width,
            "height": info.height, "sha256": hashlib.sha256(out).hexdigest()}


class _ModelOnDemand:
    """The codec, loaded when the first input that reads well needs it: each input is decoded (an image) or
    its header checked (a file) before, so a batch of broken inputs never loads the model."""

    def __init__(self, options: dict):
        self.options, self._codec = options, None

    def __call__(self):
        if self._codec is None:
            self._codec = common.load_codec(argparse.Namespace(**self.options))
        return self._codec


def _read(options: dict, source):
    """An input, checked without the model: an image decoded in full into the pixels that are then compressed
    (so read once), or a file's bytes with its header checked."""
    from gencodec import bitstream
    from gencodec.image_checks import check_pixel_budget
    from gencodec.image_reading import decode_bytes, load_image

    if options["command"] == "compress":
        if isinstance(source, bytes):
            return decode_bytes(source, "<bytes>", options["max_pixels"])
        return load_image(source, options["max_pixels"])
    data = source if isinstance(source, bytes) else common.read_input(str(source))
    header = bitstream.peek_header(data)
    check_pixel_budget(header.height, header.width, options["max_pixels"], what="the file's image")
    return data


def _convert(model: _ModelOnDemand, options: dict, source) -> tuple[bytes, dict]:
    """One image to compress, or file to decompress (a path or its bytes) -> (the output's bytes, its
    record's fields)."""
    checked = _read(options, source)
    codec = model()
    if options["command"] == "compress":
        if options["bpp"] is not None or options["max_bytes"] is not None:
            data = out = codec.compress_to_target(checked, bpp=options["bpp"], max_bytes=options["max_bytes"])
        else:
            data = out = codec.compress(checked, level=options["level"])
    else:
        data = checked
        out = common.encode_image(codec.decompress(data, realism=options["realism"], steps=options["steps"],
                                                   seed=options["seed"], scheduler=options["scheduler"]))
    return out, _fields(codec, data, out)


def _do_file(model: _ModelOnDemand, options: dict, item: Item) -> list[dict]:
    """Compress or decompress one file; its manifest record."""
    start = time.perf_counter()
    target = _output(options, item)
    try:
        out, fields = _convert(model, options, item.source)
        target.parent.mkdir(parents=True, exist_ok=True)
        common.write_output(str(target), out, force=True)  # no record says it is done: it is this run's
    except GencodecError as exc:
        return [{"input": str(item.source), "error": common.one_line(exc)}]
    except OSError as exc:
        return [{"input": str(item.source),
                 "error": f"cannot write {common.label(target)}: {common.os_error_message_short(exc)}"}]
    return [{"input": str(item.source), "output": str(target), **fields,
             "seconds": round(time.perf_counter() - start, 3)}]


def _do_shard(model: _ModelOnDemand, options: dict, item: Item) -> list[dict]:
    """A webdataset shard (.tar) into a shard of the same name below --out-dir, written whole and atomically:
    each image (or .gcz) member converted under its key, other members (labels, metadata) copied; one record
    per converted member ('SHARD::MEMBER'), then the shard's own, which marks it done."""
    start = time.perf_counter()
    target = Path(options["out_dir"]) / item.relative
    wanted, suffix = (IMAGE_SUFFIXES, SUFFIX) if options["command"] == "compress" else ((SUFFIX,), ".png")
    records, members = [], 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target) as tmp, tarfile.open(item.source, mode="r:") as source, \
                tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as shard:
            for info in source:
                if not info.isfile():
                    continue
                content = source.extractfile(info).read()
                name, out = info.name, content
                if PurePosixPath(info.name).suffix.lower() in wanted:
                    member_start = time.perf_counter()
                    try:
                        out, fields = _convert(model, options, content)
                    except GencodecError as exc:
                        records.append({"input": f"{item.source}::{info.name}", "error": common.one_line(exc)})
                        continue
                    name = str(PurePosixPath(info.name).with_suffix(suffix))
                    records.append({"input": f"{item.source}::{info.name}", "output": f"{target}::{name}", **fields,
                                    "seconds": round(time.perf_counter() - member_start, 3)})
                member = tarfile.TarInfo(name)
                member.size, member.mtime, member.mode = len(out), info.mtime, 0o644
                shard.addfile(member, io.BytesIO(out))
                members += 1
    except (tarfile.TarError, OSError, EOFError) as exc:
        return records + [{"input": str(item.source), "error": f"shard {common.label(item.source)}: "
                                                               f"{common.one_line(exc)}"}]
    return records + [{"input": str(item.source), "output": str(target), "members": members,
                       "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                       "seconds": round(time.perf_counter() - start, 3)}]


def _groups(options: dict, items: list[Item], batch_size: int):
    """The items in runs to do together: images to compress at a level, up to 4 batches' worth at a time (so
    that images of the same size can meet); anything else alone."""
    together = options["command"] == "decompress" or (options["bpp"] is None and options["max_bytes"] is None)
    run: list[Item] = []
    for item in items:
        if together and batch_size > 1 and item.source.suffix.lower() != SHARD_SUFFIX:
            run.append(item)
            if len(run) == 4 * batch_size:
                yield run
                run = []
            continue
        if run:
            yield run
            run = []
        yield [item]
    if run:
        yield run


@dataclasses.dataclass
class _Compressed:
    """A large image's file, made as soon as it was decoded."""
    data: bytes


def _do_files_together(model: _ModelOnDemand, options: dict, items: list[Item], batch_size: int) -> list[dict]:
    """Compress images with Codec.compress_batch (the same bytes as one at a time), or decompress files with
    Codec.decompress_batch; their records."""
    from gencodec.codec import ENCODE_TILE

    start = time.perf_counter()
    compress = options["command"] == "compress"
    # Each item's decoded pixels or checked file, or the error that refused it (read before the model is
    # needed); an image above the encoder's tile is compressed at once, alone, as compress_batch would, so
    # that the group never holds more than one large image.
    inputs: list = []
    for item in items:
        try:
            checked = _read(options, item.source)
        except GencodecError as exc:
            checked = exc
        if compress and not isinstance(checked, GencodecError) and max(checked.shape[:2]) > ENCODE_TILE:
            checked = _Compressed(model().compress(checked, level=options["level"]))
        inputs.append(checked)
    waiting = [checked for checked in inputs if not isinstance(checked, (GencodecError, _Compressed))]
    if not waiting:
        done = []
    elif compress:
        done = model().compress_batch(waiting, level=options["level"], batch_size=batch_size)
    else:
        done = model().decompress_batch(waiting, realism=options["realism"], steps=options["steps"],
                                        seed=options["seed"], scheduler=options["scheduler"], batch_size=batch_size)
    done = iter(done)
    results = [checked if isinstance(checked, GencodecError) else checked.data if isinstance(checked, _Compressed)
               else next(done) for checked in inputs]
    # The files are what compress wrote (its results), or what decompress read.
    files = results if compress else inputs
    seconds = round((time.perf_counter() - start) / len(items), 3)  # each file's share
    records = []
    for item, data, result in zip(items, files, results):
        if isinstance(result, GencodecError):
            records.append({"input": str(item.source), "error": common.one_line(result)})
            continue
        target = _output(options, item)
        out = result if options["command"] == "compress" else common.encode_image(result)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            common.write_output(str(target), out, force=True)
        except (GencodecError, OSError) as exc:
            reason = common.os_error_message_short(exc) if isinstance(exc, OSError) else common.one_line(exc)
            records.append({"input": str(item.source), "error": f"cannot write {common.label(target)}: {reason}"})
            continue
        records.append({"input": str(item.source), "output": str(target), **_fields(model(), data, out),
                        "seconds": seconds})
    return records


def _work(options: dict, items: list[Item], manifest: Path, rank: int, show_progress: bool) -> None:
    """One process's share: do and record each input, with the model loaded once, when the first input that
    reads well needs it."""
    import torch

    workers = options["workers"]
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    model = _ModelOnDemand(options)
    writer = manifest_file.ManifestWriter(manifest, rank)
    try:
        from tqdm import tqdm

        # Decoding one at a time keeps each image bit-identical to `decompress` alone: batches only if asked.
        on_gpu = (options["device"] or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"  # as Codec's
        default = 8 if on_gpu and options["command"] == "compress" else 1
        batch_size = options["batch_size"] or default
        with tqdm(total=len(items), desc=options["command"], unit="image", disable=not show_progress,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for group in _groups(options, items, batch_size):
                if len(group) > 1:
                    records = _do_files_together(model, options, group, batch_size)
                else:
                    do = _do_shard if group[0].source.suffix.lower() == SHARD_SUFFIX else _do_file
                    records = do(model, options, group[0])
                for record in records:
                    writer.add({**record, "worker": rank})
                bar.update(len(group))
    finally:
        writer.close()


def _worker_entry(options: dict, items: list[Item], manifest: Path, rank: int) -> None:
    try:
        _work(options, items, manifest, rank, show_progress=False)
    except KeyboardInterrupt:
        pass


def _launched_by_accelerate() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def run_batch(args: argparse.Namespace) -> int:
    """The batch command: returns the exit status after the summary line.

    Under `accelerate launch` (several processes, GPUs or nodes) each process takes every N-th input on its
    own device; they agree on what is left to do before any of them writes, and the first merges the
    manifest once all are done.
    """
    state = None
    if _launched_by_accelerate():
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
        if args.workers > 1:
            raise GencodecError("--workers is for one machine without accelerate: under accelerate launch, "
                                "choose the processes with its --num_processes")
        if args.device is None:
            args.device = "cuda" if state.device.type == "cuda" else "cpu"
    main_process = state is None or state.is_main_process
    items, manifest = _prepare(args)  # the same checks, and so the same errors, in every process
    if args.force:
        if state is not None:
            state.wait_for_everyone()
        if main_process:
            _start_over(manifest)
    if state is not None:
        state.wait_for_everyone()
    options = {key: getattr(args, key, None) for key in _OPTIONS}
    # Done: recorded with an error, or with its output still there (one deleted since is done again).
    done = {source for source, record in manifest_file.recorded(manifest).items()
            if "error" in record or Path(record.get("output", "")).is_file()}
    todo = [item for item in items if str(item.source) not in done]
    if state is not None:
        state.wait_for_everyone()  # every process has read the manifest before any of them writes to it
        if todo:
            if state.device.type == "cuda":
                import torch

                torch.cuda.set_device(state.device)
            _work(options, todo[state.process_index::state.num_processes], manifest, state.process_index,
                  show_progress=main_process and sys.stderr.isatty())
        state.wait_for_everyone()
        if not main_process:
            return EXIT_OK
    elif todo:
        workers = min(args.workers, len(todo))
        if workers == 1:
            _work(options, todo, manifest, 0, show_progress=sys.stderr.isatty())
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
            processes = [context.Process(target=_worker_entry, args=(options, todo[rank::workers], manifest, rank))
                         for rank in range(workers)]
            for process in processes:
                process.start()
            for process in processes:
                process.join()
            if any(process.exitcode for process in processes):
                raise GencodecError(f"a worker failed (exit status {[p.exitcode for p in processes]}); run the "
                                    "same command again to finish: what is done is kept")
    records = manifest_file.merge(manifest, [str(item.source) for item in items])
    failed = [record for record in records if "error" in record]
    done = [record for record in records if "error" not in record and "members" not in record]
    common.info(f"{args.command}: {len(done)} done, {len(failed)} failed; {len(items) - len(todo)} of {len(items)} "
                f"inputs were done before; manifest {common.label(manifest)}")
    for record in failed[:5]:
        common.info(f"  {record['input']}: {record['error']}")
    if len(failed) > 5:
        common.info(f"  ... and {len(failed) - 5} more (see the manifest)")
    return EXIT_ERROR if failed else EXIT_OK
