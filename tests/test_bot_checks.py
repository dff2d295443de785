"""The challenge pages of anti-bot services, told from real pages by structure alone."""

from __future__ import annotations

import pytest
from nginx_outlet import BOTCHECK_PAGE, CORPORA, has_corpus

from crawler.core.bot_checks import CAPTCHA_MAX_TEXT, bot_check, visible_text
from crawler.demo.corpus import load_pages

# Challenge pages as the services serve them (shortened: a style sheet, a longer script)

CLOUDFLARE_MANAGED = b"""<!DOCTYPE html><html lang="de-DE"><head>
<title>Einen Moment\xe2\x80\xa6</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"><meta http-equiv="refresh" content="390">
<style>*{box-sizing:border-box;margin:0;padding:0}</style></head>
<body class="no-js"><div class="main-wrapper" role="main"><div class="main-content">
<noscript><div id="challenge-error-title"><div class="h2"><span id="challenge-error-text">
JavaScript und Cookies aktivieren, um fortzufahren</span></div></div></noscript></div></div>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "www.example.com",cType: 'managed',
cRay: '8b2f0c3e9a1d7f42',cH: 'hQ1x.Yc3_Ab-1712345678-1.2.1.1',
cUPMDTk: "\\/news\\/2024\\/story?__cf_chl_tk=m3Yk.9aQz-1712345678-0-gaNycGzNCiU",
cFPWv: 'g',cITimeS: '1712345678'};var cpo = document.createElement('script');
cpo.src = '/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8b2f0c3e9a1d7f42';
document.getElementsByTagName('head')[0].appendChild(cpo);}());</script></body></html>"""

CLOUDFLARE_IUAM = b"""<!DOCTYPE HTML><html lang="en-US"><head><meta charset="UTF-8" />
<title>Just a moment...</title><meta name="robots" content="noindex, nofollow" /></head>
<body><table width="100%" height="100%" cellpadding="20"><tr><td align="center" valign="middle">
<div class="cf-browser-verification cf-im-under-attack"><noscript><h1>Please turn JavaScript
on and reload the page.</h1></noscript><div id="cf-content"><h1>Checking your browser before
accessing example.com.</h1><p>This process is automatic. Your browser will redirect to your
requested content shortly.</p><p>Please allow up to 5 seconds&hellip;</p></div>
<form id="challenge-form" action="/news/story?__cf_chl_jschl_tk__=pmd_b2a1c3d4e5f6" method="POST"
enctype="application/x-www-form-urlencoded"><input type="hidden" name="md" value="x1y2z3"/>
</form></div><div class="attribution"><a href="https://www.cloudflare.com/5xx-error-landing/"
target="_blank">DDoS protection by Cloudflare</a><br />Ray ID: 5f2c1a2b3c4d5e6f</div>
</td></tr></table></body></html>"""

DDOS_GUARD = b"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>DDoS-Guard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/.well-known/ddos-guard/js-challenge/index.js"></script></head>
<body><div id="ddg-l"><div id="ddg-l-title">Checking your browser before accessing
example.com</div><div id="ddg-l-desc">This process is automatic. Your browser will redirect
to your requested content shortly.</div><a href="https://ddos-guard.net/" id="ddg-l-ref">
DDoS protection by DDoS-Guard</a></div></body></html>"""

SUCURI = b"""<html><title>You are being redirected...</title>
<noscript>Javascript is required. Please enable javascript before you are allowed to see
this page.</noscript>
<script>var s={},u,c,U,r,i,l=0,a,e=eval,w=String.fromCharCode,sucuri_cloudproxy_js='',
S='cz0iNmNzdWN1cmkiLnN1YnN0cigwLDEpOw==';L=S.length;U=0;r='';
document.cookie='sucuri_cloudproxy_uuid_6e1f2a3b4=' + s + ';path=/;max-age=86400';
location.reload();</script></html>"""

IMPERVA = b"""<html style="height:100%"><head><META NAME="ROBOTS" CONTENT="NOINDEX, NOFOLLOW">
<meta name="format-detection" content="telephone=no"><meta name="viewport"
content="initial-scale=1.0"><script type="text/javascript"
src="/_Incapsula_Resource?SWJIYLWA=719d34d31c8e3a6e6fffd425f7e032f3"></script></head>
<body style="margin:0px;height:100%"><iframe id="main-iframe"
src="/_Incapsula_Resource?CWUDNSAI=23&xinfo=5-71234567-0%200NNN%20RT&incident_id=1234000560123456789-12345678901234567&edet=15&mth=GET"
frameborder=0 width="100%" height="100%" marginheight="0px" marginwidth="0px">Request
unsuccessful. Incapsula incident ID: 1234000560123456789-12345678901234567</iframe></body>
</html>"""

AKAMAI = b"""<HTML><HEAD>
<TITLE>Access Denied</TITLE>
</HEAD><BODY>
<H1>Access Denied</H1>

You don't have permission to access
"http&#58;&#47;&#47;www&#46;example&#46;com&#47;news&#47;2024&#47;story" on this server.<P>
Reference&#32;&#35;18&#46;6f2c1002&#46;1712345678&#46;2b3c4d5e
<P>https&#58;&#47;&#47;errors&#46;edgesuite&#46;net&#47;18&#46;6f2c1002&#46;1712345678&#46;
2b3c4d5e</P>
</BODY>
</HTML>"""

PERIMETERX = b"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Access to this page has been denied</title></head><body><section class="container">
<h1 class="page-title">Access to this page has been denied</h1><div class="content-wrapper">
<p>Press &amp; Hold to confirm you are a human (and not a bot).</p><div id="px-captcha"></div>
<p>Reference ID <span>3f2c8a10-f5e1-11ee-9c1b-6b4d2a7c9e01</span></p></div></section>
<script>window._pxAppId = 'PXab12cd34';window._pxJsClientSrc = '/ab12cd34/init.js';
window._pxFirstPartyEnabled = true;window._pxHostUrl = '/ab12cd34/xhr';</script>
<script src="/ab12cd34/captcha/captcha.js?a=c&u=3f2c8a10&v=&m=0"></script></body></html>"""

DATADOME = b"""<html lang="en"><head><title>example.com</title><style>#cmsg{animation: A 1.5s;}
@keyframes A{0%{opacity:0;}99%{opacity:0;}100%{opacity:1;}}</style></head>
<body style="margin:0"><p id="cmsg">Please enable JS and disable any ad blocker</p>
<script data-cfasync="false">var dd={'rt':'c','cid':'AHrlqAAAAAMAx1y2z3','hsh':'2211F522',
't':'fe','s':17434,'host':'geo.captcha-delivery.com'}</script>
<script data-cfasync="false" src="https://ct.captcha-delivery.com/c.js"></script></body></html>"""

RECAPTCHA_GATE = b"""<!DOCTYPE html><html><head><title>Security check</title>
<script src="https://www.google.com/recaptcha/api.js" async defer></script></head>
<body><form method="post" action="/verify"><p>Please confirm that you are not a robot.</p>
<div class="g-recaptcha" data-sitekey="6LcR_okUAAAAAPYrPe-HK_0RULO1aZM15ENyM-Mf"></div>
<button type="submit">Continue</button></form></body></html>"""

HCAPTCHA_GATE = b"""<!DOCTYPE html><html><head><title>One more step</title>
<script src="https://js.hcaptcha.com/1/api.js" async defer></script></head>
<body><h1>One more step</h1><p>Please complete the security check to access the site.</p>
<form action="/check" method="post"><div class="h-captcha"
data-sitekey="10000000-ffff-ffff-ffff-000000000001"></div></form></body></html>"""

CHALLENGES = {
    "Cloudflare": [BOTCHECK_PAGE, CLOUDFLARE_MANAGED, CLOUDFLARE_IUAM],
    "DDoS-Guard": [DDOS_GUARD], "Sucuri": [SUCURI], "Imperva": [IMPERVA],
    "Akamai": [AKAMAI], "PerimeterX": [PERIMETERX], "DataDome": [DATADOME],
    "captcha": [RECAPTCHA_GATE, HCAPTCHA_GATE],
}


@pytest.mark.parametrize(("service", "page"), [
    (service, page) for service, pages in CHALLENGES.items() for page in pages])
def test_a_challenge_page_is_told_by_its_service(service, page):
    assert bot_check(page) == service


def test_the_botcheck_mirror_page_as_nginx_serves_it():
    # its SSI directives answered: a host, a request id, a time
    served = (BOTCHECK_PAGE.replace(b'<!--# echo var="host" -->', b"127.0.0.1:8081")
              .replace(b'<!--# echo var="request_id" -->', b"7c0ffee1234567890abcdef012345678")
              .replace(b'<!--# echo var="msec" -->', b"1712345678.123"))
    assert bot_check(served) == "Cloudflare"


ARTICLE = (b"<p>The council voted on Monday to extend the night bus routes to the outer "
           b"districts, after a year of trials that carried more riders than expected.</p>"
           b"<p>The new routes start in June and run every twenty minutes.</p>")


def test_what_real_articles_carry_of_the_same_services_is_no_challenge():
    # Cloudflare's detection script and beacon, Incapsula's script, a PerimeterX style, a
    # captcha in the comment form: all on the pages these services let through
    page = (b'<html><head><title>Night buses extended</title>'
            b"<style>#px-captcha-modal{z-index:9999}</style>"
            b'<script src="/_Incapsula_Resource?SWJIYLWA=719d34d31c8e3a6e6fffd425f7e032f3">'
            b"</script></head><body><article><h1>Night buses extended</h1>" + ARTICLE
            + b'</article><form action="/comment"><textarea></textarea>'
            b'<div class="g-recaptcha" data-sitekey="6Lc"></div></form>'
            b"<script>window.__CF$cv$params={r:'8b2f0c3e9a1d7f42',t:'MTcxMjM0NTY3OA=='};"
            b"var a=document.createElement('script');"
            b"a.src='/cdn-cgi/challenge-platform/scripts/jsd/main.js';</script></body></html>")
    assert len(visible_text(page)) > CAPTCHA_MAX_TEXT
    assert bot_check(page) is None
    # an article on scraping that quotes a challenge: its text is an article's
    quoted = (b"<html><body><article><h1>Why your scraper sees a challenge</h1>"
              + ARTICLE * 6 + b"<pre>window._cf_chl_opt={cvId: '3'}</pre></article>"
              b"</body></html>")
    assert bot_check(quoted) is None
    # the captcha's script alone (an invisible score) on a page with little text: no gate
    shell = (b'<html><head><script src="https://www.google.com/recaptcha/api.js?render=6Lc">'
             b'</script></head><body><div id="app"></div></body></html>')
    assert bot_check(shell) is None


@pytest.mark.corpus
def test_no_real_page_of_the_corpora_is_a_bot_check():
    names = [path.name for path in sorted(CORPORA.iterdir()) if has_corpus(path)] \
        if CORPORA.is_dir() else []
    if not names:
        pytest.skip(f"no corpus at {CORPORA}")
    flagged, near = [], 0
    for name in names:
        for page in load_pages(CORPORA / name):
            if bot_check(page.html) is not None:
                flagged.append(f"{name}/{page.id}")
            near += b"/cdn-cgi/challenge-platform/" in page.html or b"g-recaptcha" in page.html
    assert not flagged
    if "fundus-news" in names:  # dozens of its pages carry what a challenge's service adds
        assert near >= 10
