"""``m2v-lab``: fill and inspect the feature cache from a shell.

    m2v-lab extract SRC --model NAME [options]     compute what the cache lacks (local or Ray engine)
    m2v-lab cache info [--cache-dir DIR]          entries and bytes per model
    m2v-lab cache clear [--model NAME] --yes      delete entries

Run ``m2v-lab extract --help`` for every option and examples.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import textwrap

__all__ = ["main", "build_parser"]

#: Exit codes (also in --help).
EXIT_OK, EXIT_FAILED_CLIPS, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3

_EXTRACT_EPILOG = """\
SRC is one of:
  a folder            every audio file below it, recursively (wav, flac, ogg, mp3, aiff, ...;
                      hidden names skipped); clip ids are paths relative to the folder
  a CSV file (.csv)   a 'path' column (relative to the CSV's folder, or absolute), optional
                      'clip_id', 'start', 'duration' (seconds) columns; other columns are ignored,
                      so a labels CSV works as it is
  an audio file       that one clip
  any other file      a list: one path per line, relative to the list's folder
                      (blank lines and lines starting with '#' are skipped)

What happens:
  Every clip is hashed and looked up in the cache first; clips whose entry is there are skipped,
  so a killed or failed run resumes where it stopped when run again.  The rest are decoded,
  resampled, cut into the model's windows and run through the model; each entry is written
  atomically as soon as its clip is done.  A clip that cannot be read or run is recorded with its
  reason and the run goes on; the summary at the end lists the failures.  Windows of one clip only
  share a batch (unless --mix-clips), so an entry holds the same bytes whichever engine, worker or
  rerun computed it (same device, precision, --batch-size and, on the CPU, --threads).

  A notebook reads these entries as cache hits:
    m2v.extract(m2v.load_model(NAME, device=..., dtype=...), clips, cache_dir=DIR)
  with the same model, options, device type and dtype (they are part of the cache key).

Engines:
  local   this process (default); decoding overlaps the model on a GPU
  ray     a Ray Data pipeline: hashing, cache lookups and decoding/resampling in CPU tasks, the
          model in an actor pool (--actors, one GPU each with --device cuda), results written to
          --cache-dir, which every node must reach: a shared filesystem path or a pyarrow
          filesystem URI (s3://bucket/prefix, gs://..., hdfs://...).  Audio paths must be readable
          from every node.  Connects to an existing cluster with --ray-address or $RAY_ADDRESS
          (e.g. ray://head:10001 or auto), else starts a local Ray instance.
          Needs: pip install 'm2v_lab[ray]'

Exit status:
  0  every clip is in the cache
  1  some clips failed (0 with --allow-failures)
  2  bad command line, SRC or option
  3  the run stopped: the model could not be loaded or run, the cache could not be written,
     or Ray failed (entries written before are kept; rerun to resume)

Examples:
  m2v-lab extract ~/music --model music2vec-v1
  m2v-lab extract clips.csv --model MERT-v1-95M --pool none --layers 6,-1 --cache-dir /data/m2v
  m2v-lab extract files.txt --model m-a-p/music2vec-v1 --revision <commit> --device cuda --dtype bfloat16
  m2v-lab extract /shared/fma_full --model music2vec-v1 --engine ray --device cuda --actors 8 \\
      --cache-dir /shared/m2v_cache
  RAY_ADDRESS=ray://head:10001 m2v-lab extract /shared/list.txt --model music2vec-v1 --engine ray \\
      --cache-dir s3://my-bucket/m2v_cache
"""

_CACHE_EPILOG = """\
Examples:
  m2v-lab cache info
  m2v-lab cache info --cache-dir /shared/m2v_cache --json
  m2v-lab cache clear --model tiny-music2vec --yes
  m2v-lab cache clear --cache-dir s3://my-bucket/m2v_cache --yes
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout; each option's help states its default."""


def _layers(text: str):
    """``"0,6,-1"`` / ``"block_6,block_12"`` -> a list of ints and names."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            out.append(part)
    if not out:
        raise argparse.ArgumentTypeError("give layer indices or names, comma-separated, e.g. 0,6,-1")
    return tuple(out)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m2v-lab", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Extract per-layer features of music audio models (music2vec, MERT) into m2v_lab's "
                    "content-addressed cache, and inspect that cache.",
        epilog="Commands:\n  extract   compute the features of many clips into the cache\n"
               "  cache     cache info | cache clear\n\nRun 'm2v-lab COMMAND --help' for details.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ex = commands.add_parser(
        "extract", formatter_class=_Formatter, epilog=_EXTRACT_EPILOG,
        help="compute the features of a folder, file list or CSV into the cache",
        description="Compute every layer's features of many clips into the cache (resumable).")
    ex.add_argument("src", metavar="SRC", help="a folder, a CSV with a 'path' column, an audio file, or a file list")
    ex.add_argument("--model", required=True, metavar="NAME",
                    help="registry alias (music2vec-v1, MERT-v1-95M, tiny-music2vec, ...), hub id "
                         "(m-a-p/music2vec-v1) or local directory")
    ex.add_argument("--revision", metavar="REV", help="hub commit, branch or tag (pins the weights)")
    ex.add_argument("--trust-remote-code", action="store_true",
                    help="allow a model's repository code (only models whose config needs it)")
    ex.add_argument("--pool", choices=("mean", "max", "none"), default="mean",
                    help="pool each layer over a clip's frames, or keep frames (none); default mean")
    ex.add_argument("--layers", type=_layers, metavar="LIST",
                    help="layers to keep, comma-separated indices (0 = pre_transformer, -1 = last block) or "
                         "names (block_6); frames (--pool none) store only these; pooled entries always hold "
                         "every layer (default: all)")
    ex.add_argument("--window", type=_seconds, metavar="SECONDS",
                    help="window length (default: the model's pretraining context, 30 s music2vec, 5 s MERT)")
    ex.add_argument("--min-last", type=_seconds, default=1.0, metavar="SECONDS",
                    help="drop a last window shorter than this, unless it is the whole clip (default 1.0)")
    ex.add_argument("--frames-dtype", choices=("float32", "float16"), default="float32",
                    help="precision of stored frames with --pool none (default float32)")
    ex.add_argument("--batch-size", type=_positive_int, default=8, metavar="N",
                    help="windows per forward pass, windows of one clip only (default 8)")
    ex.add_argument("--device", default="auto", metavar="DEVICE",
                    help="auto (default: CUDA > MPS > CPU), cpu, cuda, cuda:1, mps; under Ray, auto = cuda "
                         "when the cluster has GPUs")
    ex.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                    help="model precision, half precision on GPUs only (default float32)")
    ex.add_argument("--mix-clips", action="store_true",
                    help="let equal-length windows of different clips share a batch (faster for many short clips on "
                         "a GPU; entries then agree across engines and reruns only to float rounding, ~1e-6)")
    ex.add_argument("--threads", type=_positive_int, metavar="N",
                    help="torch CPU threads (default: torch's own locally, --actor-cpus under Ray)")
    ex.add_argument("--cache-dir", metavar="DIR|URI",
                    help="cache folder or pyarrow URI (s3://bucket/prefix); default $M2V_LAB_CACHE, else "
                         "~/.cache/m2v_lab")
    ex.add_argument("--engine", choices=("local", "ray"), default="local", help="where the work runs (default local)")
    ex.add_argument("--allow-failures", action="store_true", help="exit 0 even when some clips failed")
    ex.add_argument("--failures", metavar="CSV", help="also write the failed clips (clip_id, reason) to this CSV")
    ex.add_argument("--no-progress", action="store_true", help="no progress bars (the summary is still printed)")
    ex.add_argument("--decode-workers", type=int, metavar="N",
                    help="local engine: threads decoding ahead of the model (default 1 on a GPU, 0 on the CPU)")
    ray = ex.add_argument_group("Ray engine (--engine ray)")
    ray.add_argument("--ray-address", metavar="ADDRESS",
                     help="cluster to join (ray://head:10001, auto, host:6379); default $RAY_ADDRESS, else a "
                          "new local instance")
    ray.add_argument("--actors", type=_positive_int, metavar="N",
                     help="model actors (default: one per GPU on GPUs, else one)")
    ray.add_argument("--actor-cpus", type=float, default=1.0, metavar="N", help="CPUs reserved per model actor (default 1)")
    ray.add_argument("--actor-gpus", type=float, metavar="N",
                     help="GPUs per model actor (default 1 on CUDA, else 0; 0.5 puts two actors on a GPU)")
    ray.add_argument("--decode-cpus", type=float, default=1.0, metavar="N", help="CPUs per decoding task (default 1)")
    ray.add_argument("--decode-memory", type=float, default=512, metavar="MB",
                     help="memory reserved per decoding task, MiB (default 512; raise it for hour-long tracks)")
    ray.add_argument("--clips-per-call", type=_positive_int, default=4, metavar="N",
                     help="clips handed to a model actor at once, Ray Data's map_batches batch_size (default 4)")

    cache = commands.add_parser("cache", formatter_class=_Formatter, epilog=_CACHE_EPILOG,
                                help="inspect or clear the cache", description="Inspect or clear the cache.")
    actions = cache.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser("info", formatter_class=_Formatter, epilog=_CACHE_EPILOG,
                              help="entries and bytes per model",
                              description="Entries, layer files and bytes per model in the cache.")
    info.add_argument("--cache-dir", metavar="DIR|URI", help="default $M2V_LAB_CACHE, else ~/.cache/m2v_lab")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    clear = actions.add_parser("clear", formatter_class=_Formatter, epilog=_CACHE_EPILOG,
                               help="delete entries (all, or one model's)",
                               description="Delete cache entries (all, or one model's) and stale temporary files.")
    clear.add_argument("--cache-dir", metavar="DIR|URI", help="default $M2V_LAB_CACHE, else ~/.cache/m2v_lab")
    clear.add_argument("--model", metavar="NAME",
                       help="only this model's entries: its name or fingerprint prefix as 'cache info' lists it")
    clear.add_argument("--yes", "-y", action="store_true", help="do not ask (needed when stdin is not a terminal)")
    return parser


def _cache_arg(value):
    return True if value is None else value


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _cache_info(args) -> int:
    from .cache import cache_info

    info = cache_info(_cache_arg(args.cache_dir))
    if args.json:
        print(json.dumps({"root": info.attrs["root"], "temporary_files": info.attrs["temporary_files"],
                          "models": info.to_dict(orient="records")}, indent=2, default=int))
        return EXIT_OK
    print(f"cache: {info.attrs['root']}")
    if info.empty:
        print("no entries")
    else:
        shown = info.assign(size=info["bytes"].map(_human)).drop(columns=["bytes"])
        print(shown.to_string(index=False))
        print(f"total: {int(info['entries'].sum())} entries, {_human(float(info['bytes'].sum()))}")
    if info.attrs["temporary_files"]:
        print(f"{info.attrs['temporary_files']} temporary files of interrupted or running writes "
              "('cache clear' removes those older than a day)")
    return EXIT_OK


def _cache_clear(args) -> int:
    from .cache import cache_info, clear_cache

    target = _cache_arg(args.cache_dir)
    info = cache_info(target)
    if args.model and not ((info["model"] == args.model[:16]) | (info["model_name"] == args.model)).any():
        print(f"m2v-lab cache clear: no entries of model {args.model!r} in {info.attrs['root']}; 'm2v-lab cache info' "
              f"lists the models there: {sorted(set(info['model_name']))}.", file=sys.stderr)
        return EXIT_USAGE
    scope = f"model {args.model!r}" if args.model else "every model"
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"m2v-lab cache clear: would delete the entries of {scope} in {info.attrs['root']}; pass --yes "
                  "to do it.", file=sys.stderr)
            return EXIT_USAGE
        answer = input(f"Delete the cache entries of {scope} in {info.attrs['root']} "
                       f"({int(info['entries'].sum())} entries in all)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return EXIT_OK
    removed = clear_cache(target, model=args.model)
    print(f"removed {removed} entries from {info.attrs['root']}")
    return EXIT_OK


def _job(args):
    from .engines import ExtractJob

    return ExtractJob(model=args.model, revision=args.revision, device=args.device,
                      dtype=None if args.dtype == "float32" else args.dtype, trust_remote_code=args.trust_remote_code,
                      pool=None if args.pool == "none" else args.pool, layers=args.layers, window=args.window,
                      min_last=args.min_last, frames_dtype=args.frames_dtype, batch_size=args.batch_size,
                      cache_dir=args.cache_dir, threads=args.threads, mix_clips=args.mix_clips,
                      progress=not args.no_progress)


def _report(summary, args) -> int:
    out = sys.stderr
    print(f"m2v-lab extract: {summary.headline()}", file=out)
    if summary.failed:
        print(f"{len(summary.failed)} clips failed:", file=out)
        for clip_id, reason in list(summary.failed.items())[:50]:
            first = reason.splitlines()[0] if reason else ""
            shown = first if clip_id in first else f"{clip_id}: {first}"
            print(textwrap.indent(textwrap.shorten(shown, 300, placeholder=" …"), "  "), file=out)
        if len(summary.failed) > 50:
            print(f"  … and {len(summary.failed) - 50} more" + ("" if args.failures else " (--failures FILE.csv "
                                                                   "lists them all)"), file=out)
    if args.failures:
        with open(args.failures, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["clip_id", "reason"])
            writer.writerows(summary.failed.items())
    if summary.failed and not args.allow_failures:
        print("exit status 1: some clips failed (rerun to retry them; --allow-failures exits 0)", file=out)
        return EXIT_FAILED_CLIPS
    return EXIT_OK


def _extract(args) -> int:
    from .engines import read_sources, run_local, run_ray

    job = _job(args)
    sources = read_sources(args.src)
    if args.engine == "ray":
        summary = run_ray(sources, job, address=args.ray_address, actors=args.actors, actor_cpus=args.actor_cpus,
                          actor_gpus=args.actor_gpus, decode_cpus=args.decode_cpus,
                          decode_memory_mb=args.decode_memory,
                          clips_per_call=args.clips_per_call)
    else:
        summary = run_local(sources, job, decode_workers=args.decode_workers)
    return _report(summary, args)


def main(argv=None) -> int:
    """Entry point of the ``m2v-lab`` console script; returns the exit status."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import CacheError, DatasetError, M2VLabError, OptionError

    try:
        if args.command == "cache":
            return _cache_info(args) if args.action == "info" else _cache_clear(args)
        return _extract(args)
    except (OptionError, DatasetError) as exc:
        print(f"m2v-lab {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CacheError, M2VLabError) as exc:
        print(f"m2v-lab {args.command}: stopped: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except KeyboardInterrupt:
        print(f"m2v-lab {args.command}: interrupted; entries written so far are kept, rerun to resume.",
              file=sys.stderr)
        return 130
    except _ray_errors() as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip().strip("^")]
        cause = f" … {lines[-1]}" if len(lines) > 1 else ""  # Ray's message ends with the worker's exception
        print(f"m2v-lab {args.command}: stopped: Ray failed: {type(exc).__name__}: {lines[0] if lines else ''}{cause}"
              "\nEntries written so far are kept; rerun to resume.", file=sys.stderr)
        return EXIT_STOPPED


def _ray_errors() -> tuple:
    ray = sys.modules.get("ray")
    if ray is None:
        return ()
    from ray.exceptions import RayError

    return (RayError,)


if __name__ == "__main__":
    sys.exit(main())
