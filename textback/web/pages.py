"""The inbox's HTML: plain functions from data to markup. Pure, no IO.

Every value that did not come from this file goes through :func:`e`
(``html.escape`` with quotes), so a caller name or a reply can never become
markup. The look: one column no wider than a paperback page, the system font
at 16 px, near-black on off-white (or the reverse in dark mode), one blue for
everything clickable, red only for URGENT and failures, green only for
"delivered". Labels are words, never colour alone. No JavaScript: the list and
the dashboard refresh themselves with a meta refresh every minute.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import phonenumbers
from aiohttp import web

if TYPE_CHECKING:
    from textback.inbox_store import ConversationSummary, Dashboard, Thread, ThreadItem
    from textback.stats import Stats
    from textback.web.state import Site

REFRESH_SECONDS: Final = 60
MAX_REPLY: Final = 1600  # ten SMS segments: a reply, not a letter

CSS: Final = """
:root{color-scheme:light dark;--bg:#f6f6f3;--card:#fff;--ink:#1b1b1b;--muted:#575757;
--line:#d6d6d0;--accent:#0b57d0;--on-accent:#fff;--ok:#1b6a31;--bad:#b3261e;
--ours:#e6eefc;--theirs:#efefea}
@media (prefers-color-scheme:dark){:root{--bg:#141414;--card:#1e1e1e;--ink:#ededed;
--muted:#b0b0b0;--line:#3b3b3b;--accent:#8ab4f8;--on-accent:#0a1a33;--ok:#84d394;
--bad:#f4a29b;--ours:#1c2a42;--theirs:#2a2a2a}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:var(--card);border-bottom:1px solid var(--line)}
.bar,main{max-width:46rem;margin:0 auto;padding:.75rem 1rem}
.bar{display:flex;flex-wrap:wrap;gap:.25rem 1.25rem;align-items:center}
.site{font-weight:700;margin-right:auto}
.bar form{margin:0}
.bar a,.bar button{min-height:2.75rem;display:inline-flex;align-items:center}
.bar button{border:0;background:none;padding:0;color:var(--accent);font-weight:400;
text-decoration:underline}
.num{white-space:nowrap}
a{color:var(--accent)}
a:hover{text-decoration-thickness:2px}
h1{font-size:1.4rem;line-height:1.25;margin:.75rem 0 .25rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
p{margin:.5rem 0}
.muted,.meta{color:var(--muted)}
.meta{font-size:.92rem}
.cards{list-style:none;margin:1rem 0;padding:0}
.card{background:var(--card);border:1px solid var(--line);border-radius:.6rem;margin:.6rem 0}
.card>a{display:block;padding:.75rem 1rem;color:inherit;text-decoration:none}
.card>a:hover .who{text-decoration:underline}
.card.urgent{border-color:var(--bad);border-width:2px}
.top{display:flex;flex-wrap:wrap;gap:.25rem .5rem;align-items:baseline}
.who{font-weight:650;margin-right:auto}
.badge{display:inline-block;border:1px solid currentColor;border-radius:1rem;
padding:0 .55rem;font-size:.8rem;font-weight:650;white-space:nowrap}
.b-urgent{color:var(--card);background:var(--bad);border-color:var(--bad)}
.ok{color:var(--ok)}.bad{color:var(--bad)}
.thread{list-style:none;margin:1rem 0;padding:0;display:flex;flex-direction:column}
.msg{max-width:85%;margin:.4rem 0;padding:.55rem .8rem;border-radius:.8rem}
.msg .text{white-space:pre-wrap;overflow-wrap:anywhere}
.theirs{background:var(--theirs);align-self:flex-start;border-bottom-left-radius:.2rem}
.ours{background:var(--ours);align-self:flex-end;border-bottom-right-radius:.2rem}
.msg.urgent{outline:2px solid var(--bad)}
.event{align-self:center;text-align:center;color:var(--muted);font-size:.92rem;margin:.6rem 0}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=password],textarea{width:100%;font:inherit;color:var(--ink);
background:var(--card);border:1px solid var(--muted);border-radius:.5rem;padding:.6rem}
textarea{min-height:6.5rem;resize:vertical}
button{font:inherit;font-weight:650;min-height:2.75rem;padding:.45rem 1.1rem;
border-radius:.5rem;border:1px solid var(--accent);background:var(--accent);
color:var(--on-accent);cursor:pointer}
button.quiet{background:transparent;color:var(--accent)}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;align-items:center;margin:.75rem 0}
.alert,.notice{background:var(--card);border-left:4px solid var(--bad);padding:.6rem .9rem;
margin:1rem 0}
.notice{border-left-color:var(--ok)}
table{border-collapse:collapse;width:100%;max-width:34rem;background:var(--card);margin:1rem 0}
th,td{text-align:left;padding:.55rem .75rem;border-bottom:1px solid var(--line)}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.narrow{max-width:22rem}
""".strip()

# The style block is the only inline content; the policy allows it by hash and nothing else.
CSS_HASH: Final = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CONTENT_SECURITY_POLICY: Final = (
    f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

REASONS: Final = {
    "abandoned": "hung up while ringing",
    "no_answer": "no answer",
    "busy": "line busy",
    "voicemail": "went to voicemail",
    "ivr": "hung up in the menu",
    "queue_abandoned": "hung up in the queue",
    "after_hours": "after hours",
    "anonymous": "number withheld",
    "unavailable": "nobody available",
    "congestion": "network busy",
    "unknown": "unclear",
}

# Our text's state → (words, css class). Unknown states are shown as they are.
TEXT_STATES: Final = {
    "delivered": ("delivered", "ok"),
    "sent": ("sent", ""),
    "sending": ("sending", "muted"),
    "pending": ("queued", "muted"),
    "failed": ("failed", "bad"),
    "undelivered": ("not delivered", "bad"),
    "expired": ("expired", "bad"),
    "cancelled": ("cancelled", "muted"),
    "suppressed": ("not texted", "muted"),
}


def e(value: object) -> str:
    """Escaped for HTML text and attribute values."""
    return escape(str(value), quote=True)


def html(page: str, *, status: int = 200) -> web.Response:
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def pretty_number(e164: str) -> str:
    """ "+12125550100" → "+1 212-555-0100"; anything unparseable as it came."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def number(e164: str) -> str:
    """A number as markup that never breaks across lines."""
    return f'<span class="num">{e(pretty_number(e164))}</span>'


def thread_path(e164: str) -> str:
    # "+" is legal in a path and reads better than %2B in the address bar.
    return "/c/" + quote(e164, safe="+")


def when(at: float | None, site: Site, now: float) -> str:
    """A time as staff say it: "14:05", "yesterday 09:12", "Mon 3 Mar 09:12"."""
    if at is None:
        return ""
    moment = datetime.fromtimestamp(at, site.tz)
    today = datetime.fromtimestamp(now, site.tz).date()
    clock = moment.strftime("%H:%M")
    if moment.date() == today:
        return clock
    if moment.date() == today - timedelta(days=1):
        return f"yesterday {clock}"
    if moment.year == today.year:
        return f"{moment:%a} {moment.day} {moment:%b} {clock}"
    return f"{moment.day} {moment:%b %Y} {clock}"


def reason_words(reason: str | None) -> str:
    if not reason:
        return ""
    return REASONS.get(reason, reason.replace("_", " "))


def text_state(state: str | None) -> str:
    """Our text's delivery state as a labelled badge ("" when we did not text)."""
    if not state:
        return ""
    words, css = TEXT_STATES.get(state, (state, ""))
    return f'<span class="badge {css}">text {e(words)}</span>'


def layout(
    site: Site,
    title: str,
    body: str,
    *,
    user: str | None = None,
    csrf: str | None = None,
    refresh: bool = False,
) -> str:
    nav = ""
    if user is not None and csrf is not None:
        nav = (
            f'<a href="{e(site.link("/"))}">Inbox</a>'
            f'<a href="{e(site.link("/dashboard"))}">Dashboard</a>'
            f'<form method="post" action="{e(site.link("/logout"))}">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<button type="submit">Log out {e(user)}</button></form>'
        )
    meta_refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="referrer" content="no-referrer">{meta_refresh}'
        f"<title>{e(title)} · {e(site.business)}</title>"
        f"<style>{CSS}</style></head><body>"
        f'<header><div class="bar"><span class="site">{e(site.business)}</span>{nav}</div>'
        f"</header><main>{body}</main></body></html>\n"
    )


def message_page(site: Site, title: str, text: str) -> str:
    return layout(site, title, f"<h1>{e(title)}</h1><p>{e(text)}</p>")


def reload_page(site: Site) -> str:
    """Loads the same address again at once (no script: a meta refresh)."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="0">'
        f"<title>{e(site.business)}</title></head><body></body></html>\n"
    )


def login_page(site: Site, *, csrf: str, error: str, name: str, next_path: str = "/") -> str:
    alert = f'<p class="alert" role="alert">{e(error)}</p>' if error else ""
    body = (
        '<div class="narrow"><h1>Sign in</h1>'
        f"{alert}"
        f'<form method="post" action="{e(site.link("/login"))}">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<input type="hidden" name="next" value="{e(next_path)}">'
        '<label for="name">Name</label>'
        f'<input type="text" id="name" name="name" value="{e(name)}" '
        f'autocomplete="username" autocapitalize="none" required{"" if name else " autofocus"}>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" '
        f'autocomplete="current-password" required{" autofocus" if name else ""}>'
        '<div class="actions"><button type="submit">Sign in</button></div>'
        "</form></div>"
    )
    return layout(site, "Sign in", body)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _summary_card(site: Site, c: ConversationSummary, now: float) -> str:
    name = c.caller_name.strip()
    who = e(name) if name else number(c.e164)
    badges = []
    if c.urgent:
        badges.append('<span class="badge b-urgent">URGENT</span>')
    if c.unread_replies:
        badges.append(
            f'<span class="badge">{e(_plural(c.unread_replies, "reply", "replies"))}</span>'
        )
    if c.handled:
        badges.append('<span class="badge muted">handled</span>')
    call = []
    if name:
        call.append(number(c.e164))
    if c.last_call_at is not None:
        answered = c.last_reason == "answered"
        call.append(
            f"{'answered' if answered else 'missed'} call {e(when(c.last_call_at, site, now))}"
        )
        if c.last_reason and not answered:
            call.append(e(reason_words(c.last_reason)))
    if c.did:
        call.append(f"to {number(c.did)}")
    state = text_state(c.last_text_state)
    activity = f"last activity {e(when(c.last_activity_at, site, now))}"
    css = "card urgent" if c.urgent else "card"
    return (
        f'<li class="{css}"><a href="{e(site.link(thread_path(c.e164)))}">'
        f'<div class="top"><span class="who">{who}</span>{" ".join(badges)}</div>'
        f'<div class="meta">{" · ".join(call)}</div>'
        f'<div class="meta">{state} {activity}</div>'
        "</a></li>"
    )


def inbox_page(
    site: Site,
    conversations: Sequence[ConversationSummary],
    *,
    user: str,
    csrf: str,
    now: float,
) -> str:
    if conversations:
        cards = "".join(_summary_card(site, c, now) for c in conversations)
        listing = f'<ul class="cards">{cards}</ul>'
    else:
        listing = (
            '<p class="muted">No conversations yet. When a caller is missed and texted, '
            "they appear here, newest first.</p>"
        )
    body = f"<h1>Inbox</h1>{listing}"
    return layout(site, "Inbox", body, user=user, csrf=csrf, refresh=True)


OPT_OUT_SOURCES: Final = {
    "sms": "they texted STOP",
    "manual": "by staff",
    "provider": "at the provider",
}
INTENTS: Final = {"stop": "opted out", "start": "opted back in", "help": "asked for help"}
# Our text's states worth explaining with the outbox's reason or the provider's error.
EXPLAINED: Final = frozenset({"failed", "undelivered", "suppressed", "cancelled", "expired"})


def _item(site: Site, item: ThreadItem, now: float) -> str:
    at = e(when(item.at, site, now))
    if item.kind == "call":
        parts = [f"{e(item.text)} {at}"]
        if item.reason and item.reason != "answered":
            parts.append(e(reason_words(item.reason)))
        if item.did:
            parts.append(f"to {number(item.did)}")
        return f'<li class="event">{" · ".join(parts)}</li>'
    if item.kind == "note":
        parts = [e(item.text)]
        if item.user:
            parts[0] += f" by {e(item.user)}"
        if item.state:
            parts.append(e(OPT_OUT_SOURCES.get(item.state, item.state)))
        if item.reason:
            parts.append(f"code {e(item.reason)}")
        return f'<li class="event">{" · ".join(parts)} · {at}</li>'
    ours = item.kind != "reply"
    if item.kind == "text":
        who = "Our text"
    elif ours:
        who = f"Our reply ({e(item.user)})" if item.user else "Our reply"
    else:
        who = "They replied"
    badges = []
    if item.urgent:
        badges.append('<span class="badge b-urgent">URGENT</span>')
    if ours:
        badges.append(text_state(item.state))
    elif item.state in INTENTS:
        badges.append(f'<span class="badge">{e(INTENTS[item.state])}</span>')
    why = ""
    if ours and item.state in EXPLAINED and item.reason:
        why = f'<div class="meta">{e(item.reason.replace("_", " "))}</div>'
    css = "msg ours" if ours else "msg theirs urgent" if item.urgent else "msg theirs"
    return (
        f'<li class="{css}"><div class="meta">{who} · {at} {" ".join(badges)}</div>'
        f'<div class="text">{e(item.text)}</div>{why}</li>'
    )


def thread_page(
    site: Site,
    thread: Thread,
    *,
    user: str,
    csrf: str,
    now: float,
    error: str = "",
    draft: str = "",
    notice: str = "",
) -> str:
    pretty = pretty_number(thread.e164)
    name = thread.caller_name.strip()
    title = name or pretty
    path = thread_path(thread.e164)
    items = "".join(_item(site, item, now) for item in thread.items)
    alert = f'<p class="alert" role="alert">{e(error)}</p>' if error else ""
    done = f'<p class="notice" role="status">{e(notice)}</p>' if notice else ""
    token = f'<input type="hidden" name="csrf" value="{e(csrf)}">'
    if thread.opted_out:
        reply_form = (
            '<p class="alert">They opted out: textback sends this number nothing more '
            "until they text START. Call them instead.</p>"
        )
    else:
        reply_form = (
            f'<form method="post" action="{e(site.link(path + "/reply"))}">{token}'
            '<label for="body">Reply by text</label>'
            f'<textarea id="body" name="body" maxlength="{MAX_REPLY}" required>{e(draft)}'
            "</textarea>"
            '<div class="actions"><button type="submit">Send reply</button></div></form>'
        )
    if thread.handled:
        handled_form = '<p class="meta">Handled. A new call or reply from them reopens it.</p>'
    else:
        handled_form = (
            f'<form method="post" action="{e(site.link(path + "/handled"))}">{token}'
            '<div class="actions"><button class="quiet" type="submit">Mark handled</button>'
            '<span class="meta">Takes it off everyone\'s to-do list.</span></div></form>'
        )
    state = ""
    if thread.handled:
        state += ' <span class="badge muted">handled</span>'
    if thread.opted_out:
        state += ' <span class="badge bad">opted out</span>'
    body = (
        f"<h1>{e(title)}</h1>"
        f'<p class="meta">{number(thread.e164) + " · " if name else ""}'
        f'<a href="tel:{e(thread.e164)}">Call back</a>{state}</p>'
        f'<ul class="thread">{items}</ul>'
        f"{alert}{done}{reply_form}{handled_form}"
    )
    return layout(site, title, body, user=user, csrf=csrf)


def dashboard_page(
    site: Site, dashboard: Dashboard, *, user: str, csrf: str, earned: Stats | None = None
) -> str:
    rows = (
        ("Missed calls", dashboard.today.missed, dashboard.week.missed),
        ("Texted back", dashboard.today.texted, dashboard.week.texted),
        ("Replied", dashboard.today.replied, dashboard.week.replied),
        ("Opted out", dashboard.today.opted_out, dashboard.week.opted_out),
    )
    cells = "".join(
        f'<tr><th scope="row">{e(label)}</th><td class="n">{e(today)}</td>'
        f'<td class="n">{e(week)}</td></tr>'
        for label, today, week in rows
    )
    body = (
        "<h1>Dashboard</h1>"
        "<table><thead><tr><th></th>"
        '<th class="n" scope="col">Today</th><th class="n" scope="col">Last 7 days</th>'
        f"</tr></thead><tbody>{cells}</tbody></table>"
        f"{'' if earned is None else _earned(earned)}"
        f'<p class="meta">Days are counted in {e(site.tz.key)}.</p>'
    )
    return layout(site, "Dashboard", body, user=user, csrf=csrf, refresh=True)


def _earned(stats: Stats) -> str:
    """What the last 7 days earned: the headline of ``textback stats``."""
    roi, total = stats.roi, stats.total
    if roi.average_job_value > 0:
        value = roi.money(total.value)
        how = (
            f"{total.recovered} recovered × {roi.close_rate:.0%} who book"
            f" × {roi.money(roi.average_job_value)} a job"
        )
    else:
        value = "not set"
        how = "set average_job_value in the [roi] table of the configuration to see it"
    rows = (
        (
            "Recovered callers",
            str(total.recovered),
            f"back within {_plural(roi.recovered_days, 'day', 'days')} of a missed call",
        ),
        ("Value", value, how),
        (
            "SMS cost",
            roi.money(total.cost),
            f"{_plural(total.segments, 'segment', 'segments')}"
            f" × {roi.money(roi.sms_segment_price, places=4)}",
        ),
        ("Return", roi.money(total.roi) if roi.average_job_value > 0 else "-", "value − SMS cost"),
    )
    cells = "".join(
        f'<tr><th scope="row">{e(label)}</th><td class="n">{e(amount)}</td>'
        f'<td class="meta">{e(note)}</td></tr>'
        for label, amount, note in rows
    )
    return (
        "<h2>What it earned in the last 7 days</h2>"
        f"<table><tbody>{cells}</tbody></table>"
        '<p class="meta">A caller is recovered when, after a missed call, they replied or called'
        " again and were answered. Calls back from the office are not recorded."
        " <code>textback stats</code> has the full report.</p>"
    )
