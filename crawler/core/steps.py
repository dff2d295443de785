"""What happens next to a document after its mirrors answered: the failover decision
(:func:`next_step`), pure, as Scrapy's ``get_retry_request`` is under ``RetryMiddleware``.

A document's record of attempts travels with its request (``meta["attempts"]``): the mirrors
that failed it since it last waited, and what each mirror that answered said about it.

- **Agreement settles it**: two mirrors with the same text give the document's text at
  once; two with the same "not there" answer ("not found", "not HTML", no text) settle it
  once every mirror was heard (a mirror may still serve what two others took down).
- Otherwise the document goes to the best mirror in rotation that has not had it yet.
- When every mirror in rotation has answered, each mirror out of rotation that has not been
  heard on the document is asked once, as a probe (a mirror leaves rotation for other
  documents' failures or notices, and may serve this one), and a mirror under a
  Retry-After is waited for; then the best answer stands (text over no text). That costs
  one request per mirror out for each document the others said is not there.
- A "not there" does not stand over a mirror that could not answer for the document (a
  timeout, a 503) while it still *serves* (it served a page lately, ``serving``): a mirror
  in a short outage, or answering one page with a 503, may be the only one that has it.
  The document waits and asks it again, until it answers or the give-up horizon passes
  (given up: nobody can say the document is gone). A mirror silent for long (dead, or
  never up) is heard by its failures.
- When no mirror can take it now (all out of rotation, or all failed it just now), it waits
  until a mirror is back, and is given up only after ``DOCUMENT_GIVE_UP_AFTER`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crawler.core import meta
from crawler.core.judging import NO_ARTICLES, TEXT_PREFIX

if TYPE_CHECKING:
    from scrapy import Request


# -- the record of attempts ------------------------------------------------------------------------


@dataclass
class Attempts:
    #: mirrors that failed the document (mirror evidence) since it last waited
    failed_on: list[str] = field(default_factory=list)
    #: those of them that could not answer now (:attr:`Verdict.passing`): they may later
    unavailable: list[str] = field(default_factory=list)
    #: mirrors that served a notice for it (a block page, a bot check: strong evidence), in
    #: any round: the same notice again is not counted against the mirror again
    notices: list[str] = field(default_factory=list)
    #: mirror -> its answer about the document (document evidence)
    answers: dict[str, str] = field(default_factory=dict)
    #: wall-clock time of the first failure (the give-up horizon counts from it)
    since: float | None = None
    #: times the document waited for a mirror
    waits: int = 0
    #: set once the answers are settled on a short text: take that text from this mirror
    accept_from: str | None = None
    #: mirrors whose answer was a page that may be a notice served for every document
    doubted: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, request: Request) -> Attempts:
        data = request.meta.get(meta.ATTEMPTS)
        return cls(**data) if data else cls()

    def to_meta(self) -> dict[str, Any]:
        return {"failed_on": list(self.failed_on), "unavailable": list(self.unavailable),
                "notices": list(self.notices),
                "answers": dict(self.answers),
                "since": self.since, "waits": self.waits, "accept_from": self.accept_from,
                "doubted": list(self.doubted)}

    @property
    def asked(self) -> frozenset[str]:
        return frozenset(self.failed_on) | frozenset(self.answers)


# -- the decision ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retry:
    mirror: str


@dataclass(frozen=True)
class Wait:
    #: seconds before it may be tried again (once a mirror can take it)
    delay: float


@dataclass(frozen=True)
class Settled:
    #: the document's answer: "not_found", "not_html", "no_text", "no_articles" or a text
    answer: str
    #: for a text answer: the mirror that served it
    mirror: str | None = None


@dataclass(frozen=True)
class GiveUp:
    reason: str


Step = Retry | Wait | Settled | GiveUp


# -- the decision, carried out --------------------------------------------------------------------
# What the failover returns to its caller, besides the request to send next: a value, as
# ``get_retry_request`` returns one, for the caller to answer Scrapy with.


@dataclass(frozen=True)
class Ended:
    """The document has its final ``outcome``: the caller hands it to the ledger."""
    outcome: str
    reason: str = ""


@dataclass(frozen=True)
class Parked:
    """The request waits in the waiting room for a mirror: not an end."""
    reason: str


def agreed_answer(answers: dict[str, str]) -> str | None:
    """An answer two mirrors gave."""
    seen: set[str] = set()
    for answer in answers.values():
        if answer in seen:
            return answer
        seen.add(answer)
    return None


def best_answer(answers: dict[str, str]) -> tuple[str, str]:
    """(answer, mirror): a text beats no text, and no text beats the rest."""
    def rank(item: tuple[str, str]) -> int:
        answer = item[1]
        return 0 if answer.startswith(TEXT_PREFIX) else 1 if answer == NO_ARTICLES else 2
    mirror, answer = min(answers.items(), key=rank)
    return answer, mirror


def _first_to_say(attempts: Attempts, answer: str) -> str:
    return next(m for m, a in attempts.answers.items() if a == answer)


def past_horizon(attempts: Attempts, now: float, give_up_after: float) -> bool:
    """Whether a document that no mirror could serve has waited long enough to be given up:
    ``give_up_after`` seconds since its first failure (the one rule for it, wherever the
    document is: deciding, parked, or leaving the waiting room)."""
    return attempts.since is not None and now - attempts.since >= give_up_after


def wait_delay(waits: int, longest: float) -> float:
    """1, 2, 4 ... seconds between looks at a document that failed everywhere, up to
    ``longest``; the waiting room also holds it until a mirror can take it."""
    return min(float(2 ** min(waits, 16)), longest)


def keeps_last_mirror(others_in_rotation: int, serves_outlet: bool) -> bool:
    """Whether a mirror that content evidence alone would take out stays in rotation: when
    no other mirror is in rotation and it still serves pages that link into the outlet, a
    wrong judgment would park every document of the outlet, and a page judged wrongly costs
    one document at most."""
    return others_in_rotation == 0 and serves_outlet


def next_step(
    attempts: Attempts,
    in_rotation: Collection[str],
    choose: Callable[[frozenset[str]], str | None],
    now: float,
    give_up_after: float,
    longest_wait: float,
    out_of_rotation: Collection[str] = (),
    held: Mapping[str, float] | None = None,
    serving: Collection[str] = (),
) -> Step:
    """What to do with a document after ``attempts``.

    ``choose(exclude)`` picks the mirror for it (possibly winning a probe); ``in_rotation``
    are the outlet's mirrors in rotation now, ``out_of_rotation`` those out, both free to be
    asked; ``held`` the others, under a Retry-After: {mirror: seconds until it may be asked};
    ``serving`` the mirrors that served a page lately: their ``unavailable`` may pass.
    """
    agreed = agreed_answer(attempts.answers)
    if agreed is not None and agreed.startswith(TEXT_PREFIX):
        # two mirrors served the same text: the outlet's own
        return Settled(agreed, _first_to_say(attempts, agreed))
    mirror = choose(attempts.asked)
    if mirror is not None:
        # a mirror not heard yet may serve it, though others said it is not there
        return Retry(mirror)
    heard_all = (bool(attempts.answers) and bool(in_rotation)
                 and set(in_rotation) <= set(attempts.answers))
    # with no mirror in rotation, nobody has had the last word yet: it waits
    if agreed is not None or heard_all:
        unheard = [m for m in out_of_rotation if m not in attempts.asked]
        if unheard:
            # a mirror out for other documents' sake (a few 503s, a notice) was not heard
            # on this one: it is asked once, as a probe, before a "not there" stands
            return Retry(unheard[0])
        waits_for = [seconds for m, seconds in (held or {}).items() if m not in attempts.asked]
        if waits_for:
            # a mirror asked for a pause (Retry-After) and has not been heard: after it
            return Wait(max(1.0, min(waits_for)))
        answer = agreed if agreed is not None else best_answer(attempts.answers)[0]
        passing = [m for m in attempts.unavailable
                   if m in serving and m not in attempts.answers]
        if passing and not answer.startswith(TEXT_PREFIX):
            # the mirror that failed it still serves: its answer may be the article
            if past_horizon(attempts, now, give_up_after):
                return GiveUp(f"{passing[0]} failed it for {now - attempts.since:.0f} s "
                              f"while serving other pages, and the others said {answer}")
            return Wait(wait_delay(attempts.waits, longest_wait))
        if agreed is not None:
            return Settled(agreed, _first_to_say(attempts, agreed))
        if attempts.doubted and not attempts.waits:
            # one mirror's word, on a page that may be a notice it serves for every document:
            # asked again later, once the other documents it serves have told
            return Wait(wait_delay(attempts.waits, longest_wait))
        return Settled(*best_answer(attempts.answers))
    if past_horizon(attempts, now, give_up_after):
        if attempts.answers:
            answer, mirror = best_answer(attempts.answers)
            everyone = {*in_rotation, *out_of_rotation, *(held or {})}
            if answer.startswith(TEXT_PREFIX) or everyone <= set(attempts.answers):
                return Settled(answer, mirror)
            # "not there" from some mirrors, nothing from others: nobody can say it is gone
        return GiveUp(f"no mirror could serve it for {now - attempts.since:.0f} s")
    return Wait(wait_delay(attempts.waits, longest_wait))
