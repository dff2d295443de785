"""How a demo mirror may fail, by name, and the pages a failing mirror serves: a seizure
notice, a parked domain, nginx's 403 and 503 pages, a redirect off the outlet.

Each page is of the kind a real mirror serves when it fails that way; the static copies of
the outlet that tests serve (``tests/nginx_outlet.py``) serve the same bytes.
"""

from __future__ import annotations

HEALTHY = "healthy"
DEAD = "dead"  # nothing listens: connection refused
SEIZED = "seized"  # every path: 200 with a seizure notice
HANGING = "hanging"  # accepts, reads the request, never answers (until stopped or switched)
FLAKY = "flaky"  # every third request: 503; the others healthy
FORBIDDEN = "forbidden"  # every path: 403
REDIRECT_OFF = "redirect_off"  # every path: 302 to an address off the outlet
GARBAGE = "garbage"  # every path: 200 with a parked-domain advertising page
BEHAVIOURS = (HEALTHY, DEAD, SEIZED, HANGING, FLAKY, FORBIDDEN, REDIRECT_OFF, GARBAGE)

REDIRECT_TARGET = "http://127.0.0.2:9/elsewhere"
HTML = "text/html; charset=utf-8"

SEIZED_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Domain seized</title></head>
<body style="background:#0b1f3a;color:#fff;font-family:Arial,sans-serif;text-align:center">
<img src="/seal.png" alt="Seal" width="160" height="160">
<h1>This domain has been seized</h1>
<p>This domain has been seized by the United States Government in accordance with a seizure
warrant issued pursuant to 18 U.S.C. 981 and 50 U.S.C. 1701-1708 by the United States
District Court as part of a law enforcement action by the Bureau of Industry and Security,
Office of Export Enforcement and the Federal Bureau of Investigation.</p>
<p>Operating this website without a licence is a violation of federal law.</p>
<p><a href="https://justice.example.invalid/notice">More information</a></p>
</body></html>
"""

PARKED_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>This domain may be for sale</title>
<script>var pk={"lander":"v3","tid":"a81f"};</script></head>
<body><div class="parked">
<h1>This domain may be for sale!</h1>
<p><a href="http://ads.example.invalid/buy?d=1">Buy this domain</a></p>
<h2>Related searches</h2>
<ul>
<li><a href="http://ads.example.invalid/search?q=cheap+flights">Cheap flights</a></li>
<li><a href="http://ads.example.invalid/search?q=online+degrees">Online degrees</a></li>
<li><a href="http://ads.example.invalid/search?q=car+insurance">Car insurance quotes</a></li>
<li><a href="http://ads.example.invalid/search?q=web+hosting">Best web hosting</a></li>
</ul>
<p class="disclaimer">The sponsored listings on this page are provided by a third party that
has no relationship with the domain owner.</p>
</div></body></html>
"""

FORBIDDEN_PAGE = (
    b"<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1>"
    b"</center><hr><center>nginx</center></body></html>\n"
)
UNAVAILABLE_PAGE = (
    b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
    b"<h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body>"
    b"</html>\n"
)
REDIRECT_PAGE = f'<html><body>Moved <a href="{REDIRECT_TARGET}">here</a>.</body></html>\n'.encode()


def check_behaviour(behaviour: str) -> None:
    """Refuse a behaviour this module does not name."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r} (known: {', '.join(BEHAVIOURS)})")
