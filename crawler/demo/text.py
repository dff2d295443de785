"""Deterministic, plausible English news prose for the simulated outlet.

Everything here takes a ``random.Random`` so that one seed always yields the same
headlines, names and paragraphs. Sentences come from templates whose ``{slots}`` are filled
from word pools; pools are partly shared and partly per section so that politics reads
differently from culture.
"""

from __future__ import annotations

import random
import re

SECTIONS = ("politics", "economy", "world", "culture")

FIRST_NAMES = (
    "Amira", "Daniel", "Sofia", "Kwame", "Laura", "Mateo", "Hannah", "Ravi", "Elena", "Tomas",
    "Grace", "Yusuf", "Ingrid", "Marco", "Nadia", "Oliver", "Priya", "Samuel", "Leila", "Jonas",
    "Chloe", "Andrei", "Fatima", "Lucas", "Mei", "Patrick", "Zainab", "Victor", "Helen", "Omar",
)
LAST_NAMES = (
    "Okafor", "Lindqvist", "Moreno", "Haddad", "Brennan", "Takahashi", "Novak", "Mensah",
    "Fischer", "Castillo", "Duarte", "Petrov", "Clarke", "Rahman", "Keller", "Oyelaran",
    "Santos", "Whitfield", "Kovacs", "Ibrahim", "Laurent", "Nakamura", "Quinn", "Sandoval",
    "Adeyemi", "Bergstrom", "Farouk", "Gallagher", "Marsh", "Varga",
)
CITIES = (
    "Brussels", "Nairobi", "Lisbon", "Ottawa", "Jakarta", "Santiago", "Oslo", "Accra", "Hanoi",
    "Lima", "Warsaw", "Manila", "Cairo", "Dublin", "Seoul", "Tunis", "Quito", "Riga", "Dakar",
    "Wellington", "Montevideo", "Tbilisi", "Kampala", "Valletta",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)

# -- per-section vocabulary -------------------------------------------------------------------

VOCABULARY: dict[str, dict[str, tuple[str, ...]]] = {
    "politics": {
        "role": (
            "the prime minister", "the interior minister", "the opposition leader",
            "a senior government official", "the parliamentary speaker", "the justice minister",
            "a spokesperson for the ruling coalition", "the deputy prime minister",
        ),
        "body": (
            "parliament", "the cabinet", "the electoral commission", "the constitutional court",
            "the upper house", "the ruling coalition", "the opposition bloc", "the senate",
        ),
        "thing": (
            "the electoral reform bill", "the proposed budget framework",
            "a package of anti-corruption measures", "the draft constitution",
            "the new transparency rules", "a contested redistricting plan",
            "the public sector pay deal", "the regional autonomy law",
        ),
        "act": (
            "approve", "delay", "debate", "revise", "block", "fast-track", "review", "reject",
        ),
        "concern": (
            "a row over campaign finance", "mounting pressure from regional leaders",
            "weeks of street protests", "a dispute over the voting calendar",
            "falling approval ratings", "allegations of procurement irregularities",
        ),
        "group": (
            "opposition lawmakers", "civil society groups", "regional governors",
            "trade unions", "election monitors", "backbench members",
        ),
    },
    "economy": {
        "role": (
            "the finance minister", "the central bank governor", "the chief economist",
            "a senior treasury official", "the head of the statistics office",
            "an analyst at a regional investment bank", "the trade minister",
        ),
        "body": (
            "the central bank", "the finance ministry", "the statistics office",
            "the national development fund", "the stock exchange", "the energy regulator",
        ),
        "thing": (
            "the benchmark interest rate", "the fuel subsidy programme", "a new export tariff",
            "the minimum wage", "the sovereign bond issue", "the housing credit scheme",
            "the corporate tax overhaul", "a plan to privatise the state railway",
        ),
        "act": ("raise", "cut", "hold", "phase out", "extend", "expand", "freeze", "overhaul"),
        "concern": (
            "stubborn inflation", "a weaker currency", "slowing factory output",
            "rising household debt", "volatile commodity prices", "a widening trade deficit",
        ),
        "group": (
            "small business owners", "exporters", "commercial banks", "farmers",
            "retail investors", "manufacturers",
        ),
    },
    "world": {
        "role": (
            "the foreign minister", "a United Nations envoy", "the defence minister",
            "a senior diplomat", "the head of the regional bloc", "the ambassador",
            "a spokesperson for the humanitarian agency",
        ),
        "body": (
            "the Security Council", "the regional bloc", "the foreign ministry",
            "the peace delegation", "the border commission", "the humanitarian coalition",
        ),
        "thing": (
            "the ceasefire agreement", "a prisoner exchange", "the border crossing",
            "the aid corridor", "a joint naval exercise", "the sanctions regime",
            "a maritime boundary treaty", "the refugee resettlement plan",
        ),
        "act": ("extend", "suspend", "renegotiate", "monitor", "reopen", "endorse", "expand"),
        "concern": (
            "renewed fighting near the frontier", "a deepening humanitarian crisis",
            "stalled talks", "a surge in displaced families", "tensions over fishing rights",
            "reports of shelling overnight",
        ),
        "group": (
            "aid workers", "neighbouring states", "observers", "displaced families",
            "local officials", "relief agencies",
        ),
    },
    "culture": {
        "role": (
            "the festival director", "the culture minister", "the museum's chief curator",
            "a veteran film critic", "the head of the national library", "the conductor",
            "the award-winning novelist",
        ),
        "body": (
            "the national museum", "the film festival", "the arts council", "the opera house",
            "the heritage foundation", "the national theatre",
        ),
        "thing": (
            "the restored manuscript collection", "a retrospective of modernist painting",
            "the new arts funding round", "the festival programme",
            "a travelling exhibition of textiles", "the heritage listing of the old quarter",
            "a season of contemporary dance", "the translation prize",
        ),
        "act": ("unveil", "postpone", "expand", "celebrate", "fund", "reopen", "showcase"),
        "concern": (
            "a shortfall in public funding", "debate over the return of looted artefacts",
            "record ticket sales", "criticism from independent artists",
            "a dispute over broadcast rights", "renovation delays",
        ),
        "group": (
            "young artists", "independent publishers", "visitors", "local musicians",
            "collectors", "students",
        ),
    },
}

# -- templates ---------------------------------------------------------------------------------

LEADS = (
    "{City} -- {Role} said on {weekday} that {body} would {act} {thing}, a step {group} have "
    "sought for months.",
    "{Body} moved on {weekday} to {act} {thing} amid {concern}, according to officials "
    "familiar with the discussions.",
    "{City} -- {Group} reacted cautiously on {weekday} after {body} signalled it would {act} "
    "{thing} before the end of {month}.",
    "{Role_cap} is expected to {act} {thing} this week, in a decision that could shape the "
    "coming year and test the patience of {group}.",
    "Plans to {act} {thing} were thrown into doubt on {weekday} as {concern} dominated a "
    "tense session of {body} in {City}.",
)
SENTENCES = (
    "The decision follows {concern}, which has weighed on {body} since {month}.",
    "{Group_cap} said they had not been consulted.",
    "Officials declined to say when a final vote would take place.",
    "Speaking to reporters in {City}, {role} said the government was \"listening carefully\" "
    "to {group}.",
    "Critics argue that the plan does little to address {concern}.",
    "Supporters say the measure could affect as many as {number} people over the next "
    "{small} years.",
    "It was not immediately clear how {body} would respond.",
    "A similar proposal was shelved in {year} after objections from {group}.",
    "The figures, published on {weekday}, showed a {pct} percent change compared with the "
    "same period last year.",
    "{Person}, who has followed the issue for more than a decade, said the timing was "
    "\"no accident\".",
    "Several {group} gathered outside the building on {weekday} evening.",
    "In a written statement, {body} said it remained committed to {thing}.",
    "That view is not universally shared.",
    "Turnout at the hearings has been low.",
    "Some {group} have already begun to adjust their plans, according to a survey released "
    "in {month}.",
    "Negotiators met for {small} hours on {weekday} without reaching an agreement.",
    "Analysts said the outcome would depend largely on whether {concern} eases in the coming "
    "weeks.",
    "The cost of the programme has been estimated at {money}.",
    "Asked whether the timetable could slip, {role} said only that \"everything is on the "
    "table\".",
    "Local media reported that talks would resume on {weekday}.",
    "The move drew a sharp response from {group}, who called it rushed and poorly explained.",
    "For now, the practical effect is likely to be limited.",
    "{Person} told Demo News that the debate had become \"far more polarised than it needs "
    "to be\".",
    "Officials in {City} have made similar arguments in the past.",
    "Questions remain about how the plan would be financed and who would oversee it.",
    "Earlier this year, {body} agreed to {act} {thing} on a trial basis.",
    "The ministry said a detailed report would be published by the end of {month}.",
    "Those close to the talks describe the mood as cautious but constructive.",
)
QUOTES = (
    "\"We have always said this would take time, and it will,\" {role} said.",
    "\"Nobody should pretend this is the end of the matter,\" said {Person}, a spokesperson "
    "for {group}.",
    "\"The numbers speak for themselves,\" {role} told a news conference in {City}.",
    "\"This is a question of trust, and trust has to be earned,\" {Person} said.",
    "\"We will keep pushing until {body} listens,\" one of the organisers said.",
)
CONNECTORS = (
    "However, ", "Meanwhile, ", "At the same time, ", "Still, ", "By contrast, ",
    "In recent weeks, ", "According to officials, ",
)
HEADLINES = (
    "{Body_cap} to {act} {thing} amid {concern}",
    "{Group_cap} push back as {body} weighs plans to {act} {thing}",
    "{City} talks end without deal on {thing}",
    "Why {body} wants to {act} {thing} now",
    "{Role_cap} defends decision to {act} {thing}",
    "{Concern_cap}: what it means for {group}",
    "{Body_cap} under pressure over {thing}",
)

_SLOT = re.compile(r"\{(\w+)\}")


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def fill(template: str, rng: random.Random, section: str) -> str:
    """``template`` with each ``{slot}`` replaced by a fresh pick; ``_cap``/capitalised
    slot names give a capitalised pick."""
    vocabulary = VOCABULARY[section]

    def pick(match: re.Match[str]) -> str:
        slot = match.group(1)
        key = slot.removesuffix("_cap").lower()
        capitalise = slot.endswith("_cap") or slot[0].isupper()
        if key in vocabulary:
            value = rng.choice(vocabulary[key])
        elif key == "city":
            value = rng.choice(CITIES)
        elif key == "weekday":
            value = rng.choice(WEEKDAYS)
        elif key == "month":
            value = rng.choice(MONTHS)
        elif key == "person":
            value = person(rng)
        elif key == "number":
            value = f"{rng.randrange(2, 900) * 1000:,}"
        elif key == "small":
            value = str(rng.randrange(2, 12))
        elif key == "year":
            value = str(rng.randrange(2009, 2022))
        elif key == "pct":
            value = f"{rng.randrange(1, 140) / 10:.1f}"
        elif key == "money":
            value = f"${rng.randrange(12, 980) / 10:.1f} billion"
        else:
            raise KeyError(f"unknown slot {slot!r} in {template!r}")
        return _cap(value) if capitalise else value

    return _SLOT.sub(pick, template)


def headline(rng: random.Random, section: str) -> str:
    return _cap(fill(rng.choice(HEADLINES), rng, section))


def summary(rng: random.Random, section: str) -> str:
    return fill(rng.choice(SENTENCES), rng, section)


def paragraphs(rng: random.Random, section: str, words: int) -> list[str]:
    """Paragraphs of one to four sentences, about ``words`` words in all.

    Sentence templates are dealt from a shuffled deck so that one article does not repeat
    itself until the deck runs out.
    """
    deck: list[str] = []
    result = [fill(rng.choice(LEADS), rng, section)]
    count = len(result[0].split())
    while count < words:
        sentences = []
        for _ in range(rng.choice((1, 2, 2, 3, 3, 4))):
            if rng.random() < 0.15:
                sentences.append(fill(rng.choice(QUOTES), rng, section))
                continue
            if not deck:
                deck = list(SENTENCES)
                rng.shuffle(deck)
            template = deck.pop()
            sentence = fill(template, rng, section)
            # a connector lower-cases the first word, so never before a name
            if sentences and template[0] != "{" and rng.random() < 0.3:
                sentence = rng.choice(CONNECTORS) + sentence[:1].lower() + sentence[1:]
            sentences.append(sentence)
        paragraph = " ".join(sentences)
        result.append(paragraph)
        count += len(paragraph.split())
    return result


def slugify(title: str, max_words: int = 8) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words[:max_words])
