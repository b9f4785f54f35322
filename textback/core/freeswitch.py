"""FreeSWITCH call correlation: ESL events in, one verdict per call out. Pure.

Same contract as :mod:`textback.core.asterisk` (``feed`` / ``resync`` /
``on_timer`` / ``next_deadline`` / ``flush`` / ``pop_notices``), same verdicts
and reasons. The rules, from real FreeSWITCH 1.10 event streams:

* A call is the carrier-facing **A-leg**: ``CHANNEL_CREATE`` with
  ``Call-Direction: inbound`` that is not a loopback leg and that a configured
  trunk admits (gateway, ACL, network, profile or context). Inbound legs of our
  own phones start internal calls, which become outbound when a leg leaves
  through a gateway. Every other leg joins the call of the leg it was
  originated from (``originating_leg_uuid``, ``Other-Leg-Unique-ID``, the
  loopback ``*_from_uuid`` variables).
* A person answered only when the A-leg ends up bridged, directly or through
  loopback pairs (FusionPBX ring groups), to a leg that is not a loopback: a
  phone, an intercepting phone, or a gateway leg the call was forwarded out on.
  ``CHANNEL_ANSWER``, ``answer_uepoch`` and ``billsec`` prove nothing: the IVR
  and voicemail answer too. Answered is sticky.
* The call is decided on the A-leg's ``CHANNEL_HANGUP_COMPLETE``, from what was
  seen and from its final variables (``originate_disposition``, ``last_app``,
  ``voicemail_message_len``, ``Caller-Privacy-Hide-Number``...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from textback.core.callerid import is_withheld_id
from textback.core.deadlines import CallKind as _CallKind
from textback.core.deadlines import CallTimers, decide
from textback.core.hours import OpeningHours
from textback.core.trunks import Trunk, TrunkMap
from textback.core.verdict import CallNotice, CallVerdict, Reason

EslMessage = Mapping[str, str]

PBX = "freeswitch"

# originate_disposition / DIALSTATUS / Hangup-Cause values, most telling first.
_OUTCOMES: tuple[tuple[frozenset[str], Reason], ...] = (
    (
        frozenset({"NO_ANSWER", "NOANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT"}),
        Reason.NO_ANSWER,
    ),
    (frozenset({"USER_BUSY", "BUSY", "CALL_REJECTED"}), Reason.BUSY),
    (
        frozenset(
            {
                "USER_NOT_REGISTERED",
                "SUBSCRIBER_ABSENT",
                "UNALLOCATED_NUMBER",
                "NO_ROUTE_DESTINATION",
                "CHANUNAVAIL",
                "INVALID_NUMBER_FORMAT",
            }
        ),
        Reason.UNAVAILABLE,
    ),
    (
        frozenset(
            {
                "NORMAL_TEMPORARY_FAILURE",
                "RECOVERY_ON_TIMER_EXPIRE",
                "DESTINATION_OUT_OF_ORDER",
                "NETWORK_OUT_OF_ORDER",
                "SWITCH_CONGESTION",
                "CONGESTION",
                "INCOMPATIBLE_DESTINATION",
            }
        ),
        Reason.CONGESTION,
    ),
)
_CANCELLED = frozenset({"ORIGINATOR_CANCEL", "CANCEL"})


@dataclass(frozen=True, slots=True, kw_only=True)
class FsCorrelatorSettings:
    trunks: TrunkMap
    max_call_age_seconds: float = 4 * 3600.0
    external_answer_is_answer: bool = True
    hours: OpeningHours | None = None


class _Kind(Enum):
    CALLER = "caller"  # the A-leg of an inbound trunk call
    PHONE = "phone"  # the inbound leg of one of our phones (starts an internal call)
    PERSON = "person"  # a leg to a phone
    TRUNK_LEG = "trunk_leg"  # a leg out through a gateway (a mobile, an outbound call)
    LOOP = "loop"  # loopback/...-a or -b: stands for something else

    @property
    def is_person(self) -> bool:
        return self in (_Kind.PHONE, _Kind.PERSON, _Kind.TRUNK_LEG)


@dataclass(slots=True, eq=False)
class _Leg:
    uuid: str
    kind: _Kind
    call: _Call | None
    pair: str = ""  # the other half of a loopback pair
    seen_at: float = 0.0


@dataclass(slots=True, eq=False)
class _Call:
    key: str
    kind: _CallKind
    trunk: Trunk | None
    caller_raw: str
    caller_name: str
    did: str
    hidden: bool
    started_at: float
    legs: set[str] = field(default_factory=set)
    answered_at: float | None = None
    answered_outside: str = ""
    pbx_answered_at: float | None = None
    voicemail: bool = False
    voicemail_left: bool | None = None
    queue: bool = False
    absorbed: bool = False
    noticed_dial: bool = False
    deadline: float = 0.0
    ended_at: float | None = None
    end: Mapping[str, str] = field(default_factory=dict)  # the A-leg's HANGUP_COMPLETE
    blind: str = ""


def _is_loop(event: EslMessage) -> bool:
    return (
        event.get("Channel-Name", "").startswith("loopback/")
        or event.get("variable_is_loopback") == "1"
        or "variable_loopback_leg" in event
    )


def _leaves_through_gateway(event: EslMessage, trunks: TrunkMap) -> bool:
    if event.get("variable_sip_gateway_name"):
        return True
    name = event.get("Channel-Name", "")
    if name.startswith("sofia/gateway/"):
        return True
    profile = event.get("variable_sofia_profile_name", "")
    return any(profile in t.profiles for t in trunks.trunks)


class FsCorrelator:
    """Turns a FreeSWITCH ESL event stream into :class:`CallVerdict` objects."""

    def __init__(self, settings: FsCorrelatorSettings) -> None:
        self.settings = settings
        self._legs: dict[str, _Leg] = {}
        self._calls: dict[str, _Call] = {}
        self._edges: dict[str, set[str]] = {}
        self._timers = CallTimers(self._calls)
        self._notices: list[CallNotice] = []
        self.ignored_events = 0

    # -- public API -------------------------------------------------------------

    @property
    def calls_in_progress(self) -> int:
        return len(self._calls)

    def feed(self, event: EslMessage, now: float) -> list[CallVerdict]:
        name = event.get("Event-Name", "")
        if name == "CHANNEL_CREATE":
            self._create(event, now)
        elif name == "CHANNEL_BRIDGE":
            self._bridge(event, now)
        elif name == "CHANNEL_UNBRIDGE":
            self._unbridge(event)
        elif name == "CHANNEL_ANSWER":
            self._answer(event, now)
        elif name == "CHANNEL_EXECUTE":
            self._execute(event)
        elif name == "CUSTOM":
            self._custom(event)
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self._hangup_complete(event, now)
        elif name == "CHANNEL_DESTROY":
            self._destroy(event.get("Unique-ID", ""))
        return self._settle(now)

    def resync(self, rows: Sequence[Mapping[str, str]], now: float) -> list[CallVerdict]:
        """Reconcile with ``show channels`` after a (re)connect.

        Calls whose A-leg is gone ended while we could not see them:
        ``unknown`` unless a person had answered. Calls already in progress
        that we never saw are not adopted: without their creation event the
        trunk cannot be told, and a text must never rest on a guess.
        """
        present = {row.get("uuid", "") for row in rows}
        for uuid in [u for u in self._legs if u not in present]:
            leg = self._legs[uuid]
            call = leg.call
            if call is not None and call.key == uuid and call.key in self._calls:
                call.ended_at = now
                if call.answered_at is None:
                    call.blind = "the call ended while textback was not connected"
                self._arm(call, now)
            self._destroy(uuid)
        return self._settle(now)

    def on_timer(self, now: float) -> list[CallVerdict]:
        return self._settle(now)

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def flush(self, now: float) -> list[CallVerdict]:
        """The end of a replayed stream: decide every call still open as unknown."""
        verdicts = []
        for call in sorted(self._calls.values(), key=lambda c: c.started_at):
            if call.ended_at is None:
                call.blind = call.blind or "the event stream ended before the call did"
                call.ended_at = now
            if not call.absorbed:
                verdicts.append(self._decide(call))
        self._calls.clear()
        self._legs.clear()
        self._edges.clear()
        self._timers.clear()
        return verdicts

    def pop_notices(self) -> list[CallNotice]:
        notices, self._notices = self._notices, []
        return notices

    # -- legs and calls ------------------------------------------------------------

    def _create(self, event: EslMessage, now: float) -> None:
        uuid = event.get("Unique-ID", "")
        if not uuid or uuid in self._legs:
            self.ignored_events += 1
            return
        loop = _is_loop(event)
        inbound = event.get("Call-Direction", "") == "inbound"
        if inbound and not loop:
            trunk = self.settings.trunks.for_freeswitch(event)
            kind = _Kind.CALLER if trunk is not None else _Kind.PHONE
            leg = _Leg(uuid, kind, self._start_call(event, trunk, now), seen_at=now)
        else:
            parent = (
                event.get("variable_other_loopback_from_uuid")
                or event.get("variable_loopback_from_uuid")
                or event.get("variable_originating_leg_uuid")
                or event.get("Other-Leg-Unique-ID")
                or ""
            )
            parent_leg = self._legs.get(parent)
            call: _Call | None = (
                parent_leg.call if parent_leg is not None else self._calls.get(parent)
            )
            if loop:
                kind = _Kind.LOOP
            elif _leaves_through_gateway(event, self.settings.trunks):
                kind = _Kind.TRUNK_LEG
            else:
                kind = _Kind.PERSON
            leg = _Leg(uuid, kind, call, event.get("variable_other_loopback_leg_uuid", ""), now)
            if call is not None and kind is _Kind.TRUNK_LEG and call.kind is not _CallKind.INBOUND:
                call.kind = _CallKind.OUTBOUND
                call.trunk = call.trunk or self._trunk_of_gateway(event)
                self._dialed_out(call, event.get("Caller-Destination-Number", ""), now)
        self._legs[uuid] = leg
        if leg.call is not None:
            leg.call.legs.add(uuid)

    def _trunk_of_gateway(self, event: EslMessage) -> Trunk | None:
        gateway = event.get("variable_sip_gateway_name", "")
        return next((t for t in self.settings.trunks.trunks if gateway in t.gateways), None)

    def _start_call(self, event: EslMessage, trunk: Trunk | None, now: float) -> _Call:
        uuid = event.get("Unique-ID", "")
        call = _Call(
            key=uuid,
            kind=_CallKind.INBOUND if trunk is not None else _CallKind.INTERNAL,
            trunk=trunk,
            caller_raw=event.get("Caller-Caller-ID-Number", "").strip(),
            caller_name=event.get("Caller-Caller-ID-Name", "").strip(),
            # The DID as the carrier dialled it; the destination number follows the dialplan.
            did=event.get("variable_sip_to_user") or event.get("Caller-Destination-Number", ""),
            hidden=event.get("Caller-Privacy-Hide-Number", "") == "true",
            started_at=now,
        )
        self._calls[uuid] = call
        self._arm(call, now + self.settings.max_call_age_seconds)
        return call

    def _call_of(self, uuid: str) -> _Call | None:
        leg = self._legs.get(uuid)
        return leg.call if leg is not None else None

    def _dialed_out(self, call: _Call, number: str, now: float) -> None:
        if call.noticed_dial or not any(c.isdigit() for c in number):
            return
        call.noticed_dial = True
        trunk = call.trunk.name if call.trunk is not None else None
        self._notices.append(CallNotice(kind="dialed_out", number=number, trunk=trunk, at=now))

    # -- what happens on a call ------------------------------------------------------

    def _bridge(self, event: EslMessage, now: float) -> None:
        a = event.get("Bridge-A-Unique-ID") or event.get("Unique-ID", "")
        b = event.get("Bridge-B-Unique-ID") or event.get("Other-Leg-Unique-ID", "")
        if not a or not b:
            self.ignored_events += 1
            return
        self._edges.setdefault(a, set()).add(b)
        self._edges.setdefault(b, set()).add(a)
        self._judge_component(a, now)

    def _unbridge(self, event: EslMessage) -> None:
        a = event.get("Bridge-A-Unique-ID") or event.get("Unique-ID", "")
        b = event.get("Bridge-B-Unique-ID") or event.get("Other-Leg-Unique-ID", "")
        self._edges.get(a, set()).discard(b)
        self._edges.get(b, set()).discard(a)

    def _component(self, start: str) -> set[str]:
        """Legs joined to ``start`` by bridges and loopback pairs."""
        seen = {start}
        todo = [start]
        while todo:
            uuid = todo.pop()
            near = set(self._edges.get(uuid, ()))
            leg = self._legs.get(uuid)
            if leg is not None and leg.pair:
                near.add(leg.pair)
            for other in near - seen:
                seen.add(other)
                todo.append(other)
        return seen

    def _judge_component(self, start: str, now: float) -> None:
        legs = [self._legs[u] for u in self._component(start) if u in self._legs]
        people = [leg for leg in legs if leg.kind.is_person]
        callers = [leg for leg in legs if leg.kind is _Kind.CALLER and leg.call is not None]
        if not people or not callers:
            return
        for caller in callers:
            assert caller.call is not None
            for leg in people:
                if leg.kind is _Kind.PHONE and leg.call is not None and leg.call is not caller.call:
                    # A phone that intercepted the call: its own "internal call" was never one.
                    leg.call.absorbed = True
            self._answered(caller.call, people, now)

    def _answered(self, call: _Call, people: list[_Leg], now: float) -> None:
        if call.kind is not _CallKind.INBOUND or call.answered_at is not None:
            return
        only_outside = all(leg.kind is _Kind.TRUNK_LEG for leg in people)
        if only_outside and not self.settings.external_answer_is_answer:
            call.answered_outside = call.answered_outside or people[0].uuid
            return
        call.answered_at = now
        trunk = call.trunk.name if call.trunk is not None else None
        self._notices.append(
            CallNotice(kind="answered", number=call.caller_raw, trunk=trunk, at=now)
        )

    def _answer(self, event: EslMessage, now: float) -> None:
        call = self._calls.get(event.get("Unique-ID", ""))
        if call is not None and call.pbx_answered_at is None:
            call.pbx_answered_at = now

    def _execute(self, event: EslMessage) -> None:
        call = self._call_of(event.get("Unique-ID", ""))
        if call is None:
            return
        application = event.get("Application", "")
        if application == "voicemail":
            call.voicemail = True
        elif application == "callcenter":
            call.queue = True

    def _custom(self, event: EslMessage) -> None:
        subclass = event.get("Event-Subclass", "")
        if subclass == "vm::maintenance" and event.get("VM-Action") == "leave-message":
            call = self._call_of(event.get("VM-UUID", "") or event.get("Unique-ID", ""))
            if call is not None:
                call.voicemail = True
                call.voicemail_left = True
        elif subclass == "callcenter::info":
            uuid = event.get("CC-Member-Session-UUID", "") or event.get("Unique-ID", "")
            call = self._call_of(uuid)
            if call is not None:
                call.queue = True

    def _hangup_complete(self, event: EslMessage, now: float) -> None:
        uuid = event.get("Unique-ID", "")
        call = self._calls.get(uuid)
        if call is None or call.key != uuid:
            return  # a B-leg: its own result is not the call's outcome
        call.end = event
        call.ended_at = now
        call.hidden = call.hidden or event.get("Caller-Privacy-Hide-Number", "") == "true"
        if call.answered_at is None:
            self._bridged_at_end(call, event, now)
        self._arm(call, now)

    def _bridged_at_end(self, call: _Call, event: EslMessage, now: float) -> None:
        """The A-leg's own record of a bridge, for bridges whose events we did not get."""
        other = event.get("variable_bridge_uuid") or event.get("variable_last_bridge_to") or ""
        if not other:
            return
        leg = self._legs.get(other)
        if leg is not None:
            self._edges.setdefault(call.key, set()).add(other)
            self._edges.setdefault(other, set()).add(call.key)
            self._judge_component(call.key, now)
            return
        channel = event.get("variable_bridge_channel") or event.get("Other-Leg-Channel-Name", "")
        if channel and not channel.startswith("loopback/"):
            outside = channel.startswith(("sofia/gateway/", "sofia/external/"))
            kind = _Kind.TRUNK_LEG if outside else _Kind.PERSON
            self._answered(call, [_Leg(other, kind, None)], now)

    def _destroy(self, uuid: str) -> None:
        leg = self._legs.pop(uuid, None)
        for other in self._edges.pop(uuid, set()):
            self._edges.get(other, set()).discard(uuid)
        if leg is not None and leg.call is not None:
            leg.call.legs.discard(uuid)

    # -- deciding ----------------------------------------------------------------------

    def _arm(self, call: _Call, deadline: float) -> None:
        self._timers.arm(call, deadline)

    def _settle(self, now: float) -> list[CallVerdict]:
        verdicts = [self._decide(c) for c in self._timers.pop_due(now) if not c.absorbed]
        if len(self._legs) > 8 * len(self._calls) + 64:
            self._forget_stale_legs(now)
        return verdicts

    def _forget_stale_legs(self, now: float) -> None:
        """Legs whose DESTROY never came: drop those of decided calls after max age."""
        horizon = now - self.settings.max_call_age_seconds
        for uuid in [
            u
            for u, leg in self._legs.items()
            if leg.seen_at < horizon and (leg.call is None or leg.call.key not in self._calls)
        ]:
            self._destroy(uuid)

    def _decide(self, call: _Call) -> CallVerdict:
        return decide(
            call,
            pbx=PBX,
            missed_reason=lambda: self._missed_reason(call),
            anonymous=self._anonymous(call),
            voicemail_left=self._message_left(call) if self._voicemail(call) else None,
            outside_note="answered outside the PBX, through a gateway",
        )

    @staticmethod
    def _anonymous(call: _Call) -> bool:
        return call.hidden or is_withheld_id(call.caller_raw)

    @staticmethod
    def _message_left(call: _Call) -> bool:
        return bool(call.voicemail_left or call.end.get("variable_voicemail_message_len"))

    @staticmethod
    def _voicemail(call: _Call) -> bool:
        end = call.end
        if call.voicemail or end.get("variable_voicemail_message_len"):
            return True
        return "voicemail" in (
            end.get("variable_last_app"),
            end.get("variable_current_application"),
        )

    def _missed_reason(self, call: _Call) -> Reason:
        end = call.end
        hours = self.settings.hours
        ended_at = call.ended_at if call.ended_at is not None else call.started_at
        if self._anonymous(call):
            return Reason.ANONYMOUS
        if hours is not None and not hours.is_open(ended_at):
            return Reason.AFTER_HOURS
        if self._voicemail(call):
            return Reason.VOICEMAIL
        if call.queue or end.get("variable_cc_queue"):
            return Reason.QUEUE_ABANDONED
        disposition = end.get("variable_originate_disposition") or end.get(
            "variable_DIALSTATUS", ""
        )
        cause = end.get("Hangup-Cause", "")
        if disposition in _CANCELLED or cause in _CANCELLED:
            return Reason.ABANDONED
        for outcome in (disposition, cause):
            for values, reason in _OUTCOMES:
                if outcome in values:
                    return reason
        answered_by_pbx = end.get("variable_answer_uepoch", "0") not in ("", "0")
        if call.pbx_answered_at is not None or answered_by_pbx:
            return Reason.IVR
        if call.answered_outside:
            return Reason.NO_ANSWER
        return Reason.ABANDONED
