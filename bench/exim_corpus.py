"""How the Exim decoder reads a corpus of Exim main logs, line kind by line kind.

Meant for Exim's own test-suite output (``test/log/*`` of https://github.com/Exim/exim:
835 files, 17,397 lines of every line shape Exim writes), or any directory of main logs.
Not part of the test suite (the corpus is not in this repository)::

    git clone --depth 1 https://github.com/Exim/exim /tmp/exim
    .venv/bin/python bench/exim_corpus.py '/tmp/exim/test/log/*'
    .venv/bin/python bench/exim_corpus.py '/tmp/exim/test/log/*' --decoder /tmp/old_exim.py  # another version

Each line is fed to a fresh decoder per file. Delivery-related lines (``=>``, ``->``,
``>>``, ``**``, ``==``, ``rejected RCPT``) are checked against the line's own text:

- a target that is no mailbox (``|pipe``, ``/file``, ``>autoreply``, ``:blackhole:``,
  no ``@`` and no ``<address>``) must give no event, any other exactly one event whose
  recipient is the address (the one in angle brackets for ``local_part <address>``);
- a failure whose text carries an SMTP/LMTP reply (``... after ...: 550 ...``) must keep
  the reply code; a ``rejected RCPT`` event must carry a 5xx (4xx when ``temporarily``) reply.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import re
from collections import Counter
from datetime import UTC
from types import ModuleType

from connector.domain.events import DeliveryEvent
from connector.errors import SkippableError

_FLAG = re.compile(r"^\S+ \S+(?: [+-]\d{4})?(?: \[\d+\])? \S+ (=>|->|>>|\*\*|==) (\S+)(?: \([^)]*\))?(?: <([^>]*)>)?")
_REPLY_IN_TEXT = re.compile(
    r"(?:error from remote mail(?: server|er)|LMTP error) after [^:]*(?::<[^>]*>)?: "
    r"(?:host \S+ \[[^\]]*\]: )?(\d{3})[ -]"
)


def load(path: str | None) -> ModuleType:
    if path is None:
        from connector.sources import exim

        return exim
    spec = importlib.util.spec_from_file_location("exim_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_recipient(target: str, top: str | None) -> str | None:
    if target.startswith(("|", "/", ">", ":", "save")):
        return None
    target = target.rstrip(":")
    if "@" in target:
        return target
    return top if top and "@" in top else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern", help="glob of main log files")
    parser.add_argument("--decoder", help="a file holding another version of connector/sources/exim.py")
    args = parser.parse_args()
    module = load(args.decoder)
    counts: Counter[str] = Counter()
    for path in sorted(glob.glob(args.pattern)):
        decoder = module.EximDecoder("corpus", UTC, {})
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle.read().split("\n"):
                if not line:
                    continue
                counts["lines"] += 1
                out: list[DeliveryEvent] = []
                try:
                    decoder.feed(line, out)
                except SkippableError:
                    counts["malformed"] += 1
                    check(line, None, counts)
                    continue
                check(line, out, counts)
    related = counts["delivery-related"]
    right = related - counts["wrong"]
    print(f"lines {counts['lines']}, malformed {counts['malformed']}")
    print(f"delivery-related lines {related}: right {right} ({100 * right / max(related, 1):.1f} %)")
    for key in sorted(k for k in counts if k.startswith("wrong: ")):
        print(f"  {key}: {counts[key]}")


def check(line: str, out: list[DeliveryEvent] | None, counts: Counter[str]) -> None:
    """Count ``line`` as right or wrong given the events it gave (None: malformed)."""
    match = _FLAG.match(line)
    if match is not None:
        counts["delivery-related"] += 1
        flag, target, top = match.groups()
        want = expected_recipient(target, top)
        if out is None:
            counts["wrong"] += 1
            counts["wrong: malformed delivery line"] += 1
        elif want is None and out:
            counts["wrong"] += 1
            counts["wrong: event for a target that is no mailbox"] += 1
        elif want is not None and [e.recipient for e in out] != [want]:
            counts["wrong"] += 1
            counts["wrong: recipient"] += 1
        elif (
            out
            and flag in ("**", "==")
            and (code := _REPLY_IN_TEXT.search(line))
            and not (out[0].reply or "").startswith(code.group(1))
        ):
            counts["wrong"] += 1
            counts["wrong: reply code lost"] += 1
        return
    if " rejected RCPT " in line[:400] and re.match(r"^\d{4}-", line):
        counts["delivery-related"] += 1
        rcpt = re.search(r" rejected RCPT (?:<([^>]*)>|([^\s:]*))", line)
        if rcpt is None or "@" not in (rcpt.group(1) or rcpt.group(2) or ""):
            if out:
                counts["wrong"] += 1
                counts["wrong: event for a recipient that is no address"] += 1
            return
        wanted_class = 4 if " temporarily rejected RCPT " in line else 5
        if not out or out[0].reply_class != wanted_class:
            counts["wrong"] += 1
            counts["wrong: reject without its reply class"] += 1


if __name__ == "__main__":
    main()
