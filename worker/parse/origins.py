"""The sending post as the publisher writes it, from the FM line or the station name.

``AMEMBASSY ALMATY`` → ``Embassy Almaty``; ``SECSTATE WASHDC`` → ``Secretary of State``;
``USMISSION GENEVA`` → ``Mission Geneva``. Posts renamed since (Kiev → Kyiv) use today's name,
as the publisher does.
"""

from __future__ import annotations

import re

_SPECIAL = {
    "SECSTATE WASHDC": "Secretary of State",
    "SECSTATE": "Secretary of State",
    "USMISSION UNVIE VIENNA": "UNVIE",
    "UNVIE VIENNA": "UNVIE",
    "USMISSION UNVIE": "UNVIE",
    "USMISSION USUN NEW YORK": "USUN New York",
    "USUN NEW YORK": "USUN New York",
    "USMISSION USOSCE": "Mission USOSCE",
    "USMISSION USNATO": "Mission USNATO",
    "USNATO": "Mission USNATO",
    "USEU BRUSSELS": "USEU Brussels",
    "RPO DUBAI": "Iran RPO Dubai",
    "IRAN RPO DUBAI": "Iran RPO Dubai",
    "AIT TAIPEI": "AIT Taipei",
    "USOFFICE PRISTINA": "Embassy Pristina",
}
_PREFIXES = (
    ("AMEMBASSY ", "Embassy "),
    ("AMCONSUL ", "Consulate "),
    ("USMISSION ", "Mission "),
    ("USINT ", "US Interests Section "),
    ("AMCONSULATE ", "Consulate "),
    ("US MISSION ", "Mission "),
    ("USDEL ", "US Delegation "),
    ("USOFFICE ", "US Office "),
    ("REO ", "REO "),
    ("PRT ", "PRT "),
)
_RENAMED = {"KIEV": "KYIV"}
# When only the station is known (partial extracts): posts that are consulates.
CONSULATES = frozenset(
    [
        "ADANA",
        "BARCELONA",
        "BASRAH",
        "BELFAST",
        "CALGARY",
        "CAPE_TOWN",
        "CASABLANCA",
        "CHENGDU",
        "CHENNAI",
        "CHIANG_MAI",
        "CIUDAD_JUAREZ",
        "CURACAO",
        "DHAHRAN",
        "DUBAI",
        "DURBAN",
        "DUSSELDORF",
        "EDINBURGH",
        "FLORENCE",
        "FRANKFURT",
        "FUKUOKA",
        "GUADALAJARA",
        "GUANGZHOU",
        "HALIFAX",
        "HAMBURG",
        "HAMILTON",
        "HERMOSILLO",
        "HO_CHI_MINH_CITY",
        "HONG_KONG",
        "HYDERABAD",
        "ISTANBUL",
        "JEDDAH",
        "JERUSALEM",
        "JOHANNESBURG",
        "KARACHI",
        "KOLKATA",
        "KRAKOW",
        "LAGOS",
        "LAHORE",
        "LEIPZIG",
        "LYON",
        "MARSEILLE",
        "MATAMOROS",
        "MELBOURNE",
        "MERIDA",
        "MILAN",
        "MONTERREY",
        "MONTREAL",
        "MUMBAI",
        "MUNICH",
        "NAGOYA",
        "NAHA",
        "NAPLES",
        "NOGALES",
        "NUEVO_LAREDO",
        "OSAKA_KOBE",
        "PERTH",
        "PESHAWAR",
        "PONTA_DELGADA",
        "QUEBEC",
        "RECIFE",
        "RIO_DE_JANEIRO",
        "SAO_PAULO",
        "SAPPORO",
        "SHANGHAI",
        "SHENYANG",
        "ST_PETERSBURG",
        "STRASBOURG",
        "SURABAYA",
        "SYDNEY",
        "THESSALONIKI",
        "TIJUANA",
        "TORONTO",
        "VANCOUVER",
        "VLADIVOSTOK",
        "YEKATERINBURG",
    ]
)
_STATION_SPECIAL = {
    "STATE": "Secretary of State",
    "USNATO": "Mission USNATO",
    "USEU": "USEU Brussels",
    "UNVIE": "UNVIE",
    "USUN": "USUN New York",
    "USOSCE": "Mission USOSCE",
    "RPODUBAI": "Iran RPO Dubai",
    "USUNNEWYORK": "USUN New York",
}


_PLACE_WORD = re.compile(r"[A-Za-z']+")
_PLACE_NAME = re.compile(r"[A-Z][A-Z '-]*")


def _place(words: str) -> str:
    words = " ".join(_RENAMED.get(w, w) for w in words.split())
    return _PLACE_WORD.sub(lambda m: m[0].capitalize(), words.title())


def origin_from_fm(fm: str) -> str | None:
    """Map an FM line value to the publisher's origin, or None when it is not a known form."""
    value = " ".join(fm.upper().split())
    if value in _SPECIAL:
        return _SPECIAL[value]
    for prefix, label in _PREFIXES:
        if value.startswith(prefix):
            place = value[len(prefix) :]
            special = _SPECIAL.get(place)
            return special or label + _place(place)
    return None


def origin_from_station(station: str) -> str | None:
    """Best guess for a cable without FM line: the post named in its reference line."""
    key = station.upper().replace(" ", "")
    if key in _STATION_SPECIAL:
        return _STATION_SPECIAL[key]
    words = " ".join(station.upper().split())
    if not _PLACE_NAME.fullmatch(words):
        return None
    kind = "Consulate " if words.replace(" ", "_") in CONSULATES else "Embassy "
    return kind + _place(words)
