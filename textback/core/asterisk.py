"""Asterisk call correlation: AMI events in, one verdict per call out. Pure.

No IO, no clocks, no asyncio: every method takes ``now`` and the shell asks
:meth:`AmiCorrelator.next_deadline` when to call :meth:`AmiCorrelator.on_timer`.

The rules, all drawn from real AMI streams:

* A call is keyed by the Uniqueid of its originating channel (Uniqueid ==
  Linkedid at Newchannel). Every other channel joins the call of its Linkedid.
  Events are routed by Uniqueid, so a Linkedid rewritten later (pickup, transfer)
  moves the channel, never the call.
* An originating channel on a configured trunk that reaches state Ring is an
  inbound call. One that rings out (Ringing/Up without Ring) was originated by
  the PBX (click-to-call): outbound. A phone-originated call that brings a trunk
  leg in is outbound; otherwise internal.
* A person answered only if a person channel (a phone, or a trunk leg the call
  was forwarded out on) answered a Dial or shares a bridge with a channel of the
  call, or a queue member that is not a Local channel connected. ``Newstate Up``
  on the caller, Cdr dispositions and hangup causes prove nothing: IVRs,
  voicemail and queues answer too. Answered is sticky.
* The call is decided once its originating channel has hung up and every other
  channel of it is gone, or ``grace_seconds`` later, whichever comes first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fnmatch import fnmatchcase

from textback.core.callerid import is_restricted_presentation, is_withheld_id
from textback.core.deadlines import CallKind as _CallKind
from textback.core.deadlines import CallTimers, decide
from textback.core.hours import OpeningHours
from textback.core.trunks import Trunk, TrunkMap
from textback.core.verdict import CallNotice, CallVerdict, Reason

AmiMessage = Mapping[str, str]

PBX = "asterisk"

# Channel technologies that never stand for a person on the line.
NON_PERSON_TECHS = frozenset(
    {
        "Local",
        "Announcer",
        "CBAnn",
        "CBRec",
        "Snoop",
        "Recorder",
        "Message",
        "Multicast",
        "UnicastRTP",
        "AudioSocket",
        "Bridge",
    }
)
_STATE_RING = 4
_STATES_RANG_OUT = frozenset({3, 5, 6})  # Dialing, Ringing, Up: what an originated leg does
_STATE_UP = 6
_STATE_BUSY = 7
# Dial outcomes that describe an unanswered call, most telling first.
_DIAL_OUTCOMES = (
    ("NOANSWER", Reason.NO_ANSWER),
    ("BUSY", Reason.BUSY),
    ("CONGESTION", Reason.CONGESTION),
    ("CHANUNAVAIL", Reason.UNAVAILABLE),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrelatorSettings:
    trunks: TrunkMap
    grace_seconds: float = 2.0
    max_call_age_seconds: float = 4 * 3600.0
    voicemail_contexts: tuple[str, ...] = ("sub-vm", "macro-vm", "vm-*")
    closed_contexts: tuple[str, ...] = ()
    external_answer_is_answer: bool = True
    hours: OpeningHours | None = None


class _Kind(Enum):
    CALLER = "caller"  # the originating channel of an inbound trunk call
    TRUNK_LEG = "trunk_leg"  # a trunk channel the PBX placed (forward to a mobile, outbound)
    PHONE = "phone"
    LOCAL = "local"
    OTHER = "other"  # announcers, snoops, recorders: never a person

    @property
    def is_person(self) -> bool:
        return self in (_Kind.PHONE, _Kind.TRUNK_LEG)


@dataclass(slots=True, eq=False)
class _Channel:
    uniqueid: str
    name: str
    kind: _Kind
    call: _Call
    up: bool = False
    bridge: str | None = None


@dataclass(slots=True, eq=False)
class _Call:
    key: str
    kind: _CallKind
    origin: _Channel | None  # set right after construction
    trunk: Trunk | None
    caller_raw: str
    caller_name: str
    did: str
    started_at: float
    channels: dict[str, _Channel] = field(default_factory=dict)
    seen_ring: bool = False
    restricted: bool = False
    pbx_answered_at: float | None = None
    answered_at: float | None = None
    answered_outside: str = ""  # the trunk leg that answered, when only such a leg did
    voicemail: bool = False
    voicemail_left: bool | None = None
    closed: bool = False
    busy_state: bool = False
    queue_joined: bool = False
    queue_abandoned: bool = False
    in_queue: bool = False
    active_dials: set[str] = field(default_factory=set)
    dial_statuses: set[str] = field(default_factory=set)
    ringing_at_hangup: bool | None = None
    ended_at: float | None = None
    deadline: float = 0.0
    blind: str = ""  # why part of this call was not seen (set on resync)
    noticed_dial: bool = False


def _tech(name: str) -> str:
    return name.partition("/")[0]


def _state(event: AmiMessage) -> int | None:
    value = event.get("ChannelState", "")
    return int(value) if value.isdigit() else None


class AmiCorrelator:
    """Turns an Asterisk AMI event stream into :class:`CallVerdict` objects."""

    def __init__(self, settings: CorrelatorSettings) -> None:
        self.settings = settings
        self._channels: dict[str, _Channel] = {}
        self._calls: dict[str, _Call] = {}
        self._bridges: dict[str, dict[str, str]] = {}  # bridge id -> {uniqueid: channel name}
        self._timers = CallTimers(self._calls)
        self._notices: list[CallNotice] = []
        # Events we could not place (unknown channel, missing fields): counted, never raised.
        self.ignored_events = 0

    # -- public API -------------------------------------------------------------

    @property
    def calls_in_progress(self) -> int:
        return len(self._calls)

    def feed(self, event: AmiMessage, now: float) -> list[CallVerdict]:
        """Apply one AMI event. Returns the verdicts it completes (usually none)."""
        name = event.get("Event", "")
        if name == "Newchannel":
            self._new_channel(event, now)
            return self._settle(now)
        channel = self._channels.get(event.get("Uniqueid", ""))
        if channel is None:
            self._unplaced(name, event, now)
            return self._settle(now)
        self._observe(channel, event, now)
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, channel, event, now)
        return self._settle(now)

    def resync(self, channels: Sequence[AmiMessage], now: float) -> list[CallVerdict]:
        """Reconcile with a CoreShowChannels snapshot taken after a (re)connect.

        Channels we track that are gone ended while we could not see them; a
        call whose caller is no longer there is decided at once (``unknown``
        unless a person had already answered). Calls we had never seen are
        picked up; if their caller is already Up we cannot know who answered,
        so they can end ``answered`` or ``unknown``, never ``missed``.
        """
        listed = {ch.get("Uniqueid", ""): ch for ch in channels}
        for uniqueid in [u for u in self._channels if u not in listed]:
            self._channel_gone(self._channels[uniqueid], now, lost=True)
        for snapshot in channels:
            self._resync_channel(snapshot, now)
        by_bridge: dict[str, dict[str, str]] = {}
        for snapshot in channels:
            bridge = snapshot.get("BridgeId", "")
            if bridge:
                by_bridge.setdefault(bridge, {})[snapshot.get("Uniqueid", "")] = snapshot.get(
                    "Channel", ""
                )
        self._bridges = by_bridge
        for bridge_id, members in by_bridge.items():
            for uniqueid in members:
                if uniqueid in self._channels:
                    self._channels[uniqueid].bridge = bridge_id
            self._judge_bridge(members, now)
        for call in self._calls.values():
            origin = call.origin
            if (
                call.kind is _CallKind.INBOUND
                and origin is not None
                and origin.up
                and call.answered_at is None
                and not call.blind
            ):
                call.blind = "answered by the PBX while textback was not connected"
        return self._settle(now)

    def pop_notices(self) -> list[CallNotice]:
        """Mid-call facts since the last call: answers and numbers dialled out."""
        notices, self._notices = self._notices, []
        return notices

    def on_timer(self, now: float) -> list[CallVerdict]:
        """Decide every call whose deadline has passed."""
        return self._settle(now)

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` next has work, or None."""
        return self._timers.next_deadline()

    def needless(self, frame: bytes | bytearray) -> bool:
        """Whether a raw frame can be dropped unparsed (the AMI source's ``skip``).

        :func:`is_noise`, and the dialplan's steps (``Newexten``) but those
        that run VoiceMail or enter a voicemail or closed context: every other
        fact a step carries comes again on the channel's later events, as a
        site that does not grant ``read = dialplan`` shows.
        """
        if is_noise(frame):
            return True
        if not frame.startswith(_NEWEXTEN_HEADS) or b"\nActionID:" in frame:
            return False
        application = _line_value(frame, b"Application")
        context = _line_value(frame, b"Context")
        if application is None or context is None or application.lower() == b"voicemail":
            return False
        settings = self.settings
        voicemail, closed = _context_flags(
            context.decode("utf-8", "replace"),
            settings.voicemail_contexts,
            settings.closed_contexts,
        )
        return not (voicemail or closed)

    def flush(self, now: float) -> list[CallVerdict]:
        """Decide everything now: the end of a replayed stream.

        Calls whose caller hung up are judged as usual; calls still in
        progress are ``unknown`` (the stream ended before they did).
        """
        verdicts = []
        for call in sorted(self._calls.values(), key=lambda c: (c.ended_at is None, c.deadline)):
            if call.ended_at is None:
                call.blind = call.blind or "the event stream ended before the call did"
                call.ended_at = now
            verdicts.append(self._decide(call))
        self._calls.clear()
        self._channels.clear()
        self._bridges.clear()
        self._timers.clear()
        return verdicts

    # -- channel and call bookkeeping ------------------------------------------

    def _classify(self, name: str, *, originates: bool, context: str) -> tuple[_Kind, Trunk | None]:
        tech = _tech(name)
        if tech == "Local":
            return _Kind.LOCAL, None
        trunks = self.settings.trunks
        trunk = trunks.match(name, context) if originates else trunks.by_channel(name)
        if trunk is None and not originates:
            # A context-only trunk: its outbound legs start in the trunk's context too.
            trunk = trunks.match(name, context)
        if trunk is not None:
            return (_Kind.CALLER if originates else _Kind.TRUNK_LEG), trunk
        if tech in NON_PERSON_TECHS:
            return _Kind.OTHER, None
        return _Kind.PHONE, None

    def _new_channel(self, event: AmiMessage, now: float, *, resynced: bool = False) -> None:
        uniqueid = event.get("Uniqueid", "")
        linkedid = event.get("Linkedid", "")
        name = event.get("Channel", "")
        if not uniqueid or not name or uniqueid in self._channels:
            self.ignored_events += 1
            return
        originates = uniqueid == linkedid
        kind, trunk = self._classify(name, originates=originates, context=event.get("Context", ""))
        if originates:
            call = self._start_call(event, kind, trunk, now)
            channel = _Channel(uniqueid, name, kind, call)
            call.origin = channel
            # Its Ring state went by before we connected: it cannot be told from
            # an Originate any more, so it counts as inbound.
            call.seen_ring = resynced
        else:
            parent = self._call_for(linkedid)
            if parent is None:
                self.ignored_events += 1
                return
            channel = _Channel(uniqueid, name, kind, parent)
            if kind is _Kind.TRUNK_LEG and parent.kind is _CallKind.INTERNAL:
                parent.kind = _CallKind.OUTBOUND
                parent.trunk = trunk
        channel.call.channels[uniqueid] = channel
        self._channels[uniqueid] = channel
        self._observe(channel, event, now)
        self._apply_state(channel, event, now)

    def _start_call(self, event: AmiMessage, kind: _Kind, trunk: Trunk | None, now: float) -> _Call:
        exten = event.get("Exten", "")
        call = _Call(
            key=event.get("Uniqueid", ""),
            kind=_CallKind.INBOUND if kind is _Kind.CALLER else _CallKind.INTERNAL,
            origin=None,
            trunk=trunk,
            caller_raw=event.get("CallerIDNum", "").strip(),
            caller_name=_clean_name(event.get("CallerIDName", "")),
            did="" if exten in ("s", "") else exten,
            started_at=now,
        )
        self._calls[call.key] = call
        self._arm(call, now + self.settings.max_call_age_seconds)
        return call

    def _call_for(self, linkedid: str) -> _Call | None:
        call = self._calls.get(linkedid)
        if call is not None:
            return call
        # The Linkedid names a channel we know that is not an originator (rare:
        # Linkedid moved to another channel of the call).
        channel = self._channels.get(linkedid)
        return channel.call if channel is not None else None

    def _observe(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        """What every event carrying this channel's snapshot tells us."""
        # Runs on every event: the cheap tests come first, and facts already known
        # (restricted, a DID, the context verdicts) are not looked up again.
        call = channel.call
        linkedid = event.get("Linkedid", "")
        if (
            linkedid
            and linkedid != call.key
            and (channel is not call.origin or call.kind is not _CallKind.INBOUND)
        ):
            self._rehome(channel, linkedid)
            call = channel.call
        if call.kind is not _CallKind.INBOUND:
            return
        if channel is call.origin:
            # channelvars CALLERID(pres) on any event, or NewCallerid's own field.
            if not call.restricted:
                pres = event.get("ChanVariable[CALLERID(pres)]", "") or event.get(
                    "CID-CallingPres", ""
                )
                if pres and is_restricted_presentation(pres):
                    call.restricted = True
            if not call.did:
                call.did = event.get("ChanVariable[FROM_DID]", "")
        if channel.kind is _Kind.CALLER or channel.kind is _Kind.LOCAL:
            context = event.get("Context", "")
            if context:
                settings = self.settings
                voicemail, closed = _context_flags(
                    context, settings.voicemail_contexts, settings.closed_contexts
                )
                if voicemail:
                    call.voicemail = True
                if closed:
                    call.closed = True

    def _rehome(self, channel: _Channel, linkedid: str) -> None:
        """Asterisk rewrote this channel's Linkedid: it now belongs to another call."""
        target = self._call_for(linkedid)
        if target is None or target is channel.call:
            return
        old = channel.call
        del old.channels[channel.uniqueid]
        channel.call = target
        target.channels[channel.uniqueid] = channel
        if old.kind is not _CallKind.INBOUND and old.origin is channel:
            # A phone that picked up, or a consultation leg, merged into our call:
            # its own "internal call" was never a call of its own.
            for other in list(old.channels.values()):
                self._rehome(other, linkedid)
            self._calls.pop(old.key, None)

    def _apply_state(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        state = _state(event)
        call = channel.call
        if state is None:
            return
        if state == _STATE_UP:
            channel.up = True
        if channel is not call.origin or call.kind is _CallKind.INTERNAL:
            return
        if state == _STATE_RING:
            call.seen_ring = True
        elif state in _STATES_RANG_OUT and not call.seen_ring and channel.kind is _Kind.CALLER:
            # The PBX dialled this trunk channel itself (Originate): not a caller.
            call.kind = _CallKind.OUTBOUND
        if state == _STATE_UP and call.pbx_answered_at is None:
            call.pbx_answered_at = now
        elif state == _STATE_BUSY:
            call.busy_state = True

    def _unplaced(self, name: str, event: AmiMessage, now: float) -> None:
        """Events without a known channel of their own that still matter."""
        if name in ("BridgeLeave", "BridgeDestroy"):
            self._bridge_event(name, event)
        elif name not in _QUIET_UNPLACED:
            self.ignored_events += 1

    # -- event handlers (channel known) ------------------------------------------

    def _on_newstate(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        self._apply_state(channel, event, now)

    def _on_rename(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        channel.name = event.get("Newname", channel.name)

    def _on_new_callerid(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        call = channel.call
        if call.kind is _CallKind.OUTBOUND and channel.kind is _Kind.TRUNK_LEG:
            # The trunk leg's caller ID is set to the number the phone dialled out.
            self._dialed_out(call, event.get("CallerIDNum", ""), now)

    def _dialed_out(self, call: _Call, number: str, now: float) -> None:
        if call.noticed_dial or not any(c.isdigit() for c in number):
            return
        call.noticed_dial = True
        call.did = call.did or number
        trunk = call.trunk.name if call.trunk is not None else None
        self._notices.append(CallNotice(kind="dialed_out", number=number, trunk=trunk, at=now))

    def _on_dial_begin(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        call = channel.call
        if (
            call.kind is _CallKind.OUTBOUND
            and self._kind_of(event.get("DestUniqueid", ""), event.get("DestChannel", ""))
            is _Kind.TRUNK_LEG
        ):
            self._dialed_out(call, event.get("DestCallerIDNum", ""), now)
        if channel is channel.call.origin:
            channel.call.active_dials.add(
                event.get("DestUniqueid", "") or event.get("DestChannel", "")
            )

    def _on_dial_end(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        call = channel.call
        status = event.get("DialStatus", "")
        dest_id = event.get("DestUniqueid", "")
        if channel is call.origin:
            call.active_dials.discard(dest_id or event.get("DestChannel", ""))
            call.dial_statuses.add(status)
        if status == "ANSWER":
            kind = self._kind_of(dest_id, event.get("DestChannel", ""))
            if kind.is_person:
                self._answered(call, kind, event.get("DestChannel", ""), now)

    def _on_agent_connect(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        # Queue members are usually Local channels: then the member's own Dial
        # (the ;2 half ringing the phone) is the proof, not this event.
        kind = self._kind_of(event.get("DestUniqueid", ""), event.get("DestChannel", ""))
        if kind.is_person:
            self._answered(channel.call, kind, event.get("DestChannel", ""), now)

    def _on_bridge_enter(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        bridge_id = event.get("BridgeUniqueid", "")
        if not bridge_id:
            return
        members = self._bridges.setdefault(bridge_id, {})
        members[channel.uniqueid] = channel.name
        channel.bridge = bridge_id
        self._judge_bridge(members, now)

    def _on_bridge_leave(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        self._bridge_event("BridgeLeave", event)
        channel.bridge = None

    def _on_bridge_destroy(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        self._bridge_event("BridgeDestroy", event)

    def _on_queue_join(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        if channel is channel.call.origin:
            channel.call.queue_joined = channel.call.in_queue = True

    def _on_queue_abandon(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        if channel is channel.call.origin:
            channel.call.queue_abandoned = True

    def _on_queue_leave(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        if channel is channel.call.origin:
            channel.call.in_queue = False

    def _on_message_waiting(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        # Carries the snapshot of the channel that left the message (Asterisk 16.24+).
        channel.call.voicemail = True
        channel.call.voicemail_left = True

    def _on_newexten(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        if event.get("Application", "").lower() == "voicemail":
            channel.call.voicemail = True

    def _on_varset(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        call = channel.call
        variable = event.get("Variable", "")
        value = event.get("Value", "")
        if variable == "VMSTATUS" and value:
            call.voicemail = True
            if call.voicemail_left is not True:
                call.voicemail_left = value == "SUCCESS"
        elif variable.lstrip("_") == "FROM_DID" and value and not call.did:
            call.did = value

    def _on_hangup_request(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        call = channel.call
        if channel is call.origin and call.ringing_at_hangup is None:
            call.ringing_at_hangup = bool(call.active_dials)

    def _on_hangup(self, channel: _Channel, event: AmiMessage, now: float) -> None:
        call = channel.call
        if channel is call.origin:
            if call.ringing_at_hangup is None:
                call.ringing_at_hangup = bool(call.active_dials)
            if event.get("Cause") == "17":
                call.busy_state = True
        self._channel_gone(channel, now, lost=False)

    # -- shared pieces ------------------------------------------------------------

    def _kind_of(self, uniqueid: str, name: str) -> _Kind:
        channel = self._channels.get(uniqueid)
        if channel is not None:
            return channel.kind
        if not name:
            return _Kind.OTHER
        return self._classify(name, originates=False, context="")[0]

    def _answered(self, call: _Call, kind: _Kind, by: str, now: float) -> None:
        if call.kind is not _CallKind.INBOUND or call.answered_at is not None:
            return
        if kind is _Kind.TRUNK_LEG and not self.settings.external_answer_is_answer:
            call.answered_outside = call.answered_outside or by
            return
        call.answered_at = now
        trunk = call.trunk.name if call.trunk is not None else None
        self._notices.append(
            CallNotice(kind="answered", number=call.caller_raw, trunk=trunk, at=now)
        )

    def _judge_bridge(self, members: Mapping[str, str], now: float) -> None:
        """A bridge joining a channel of an inbound call with a person answers it."""
        if len(members) < 2:
            return
        kinds = {uid: self._kind_of(uid, name) for uid, name in members.items()}
        people = [uid for uid, kind in kinds.items() if kind.is_person]
        if not people:
            return
        for uid in members:
            channel = self._channels.get(uid)
            if channel is None or channel.call.kind is not _CallKind.INBOUND:
                continue
            for person in people:
                if person != uid:
                    self._answered(channel.call, kinds[person], members[person], now)
                    break

    def _bridge_event(self, name: str, event: AmiMessage) -> None:
        bridge_id = event.get("BridgeUniqueid", "")
        if name == "BridgeDestroy":
            self._bridges.pop(bridge_id, None)
            return
        members = self._bridges.get(bridge_id)
        if members is not None:
            members.pop(event.get("Uniqueid", ""), None)
            if not members:
                del self._bridges[bridge_id]

    def _channel_gone(self, channel: _Channel, now: float, *, lost: bool) -> None:
        self._channels.pop(channel.uniqueid, None)
        call = channel.call
        call.channels.pop(channel.uniqueid, None)
        call.active_dials.discard(channel.uniqueid)
        if channel.bridge is not None:
            members = self._bridges.get(channel.bridge)
            if members is not None:
                members.pop(channel.uniqueid, None)
                if not members:
                    del self._bridges[channel.bridge]
        if channel is call.origin:
            call.ended_at = now
            if lost and call.answered_at is None:
                call.blind = "the caller hung up while textback was not connected"
            self._arm(call, now if not call.channels else now + self.settings.grace_seconds)
        elif call.ended_at is not None and not call.channels:
            self._arm(call, now)

    def _resync_channel(self, snapshot: AmiMessage, now: float) -> None:
        uniqueid = snapshot.get("Uniqueid", "")
        channel = self._channels.get(uniqueid)
        if channel is None:
            started = now - _duration(snapshot.get("Duration", ""))
            self._new_channel(snapshot, started, resynced=True)
            channel = self._channels.get(uniqueid)
            if channel is None:
                return
            self._apply_state(channel, snapshot, now)
        else:
            self._observe(channel, snapshot, now)
            self._apply_state(channel, snapshot, now)
        channel.bridge = None

    def _arm(self, call: _Call, deadline: float) -> None:
        self._timers.arm(call, deadline)

    def _settle(self, now: float) -> list[CallVerdict]:
        verdicts = []
        for call in self._timers.pop_due(now):
            for channel in call.channels.values():
                self._channels.pop(channel.uniqueid, None)
            verdicts.append(self._decide(call))
        return verdicts

    # -- the judgement -------------------------------------------------------------

    def _decide(self, call: _Call) -> CallVerdict:
        return decide(
            call,
            pbx=PBX,
            missed_reason=lambda: self._missed_reason(call),
            anonymous=self._anonymous(call),
            voicemail_left=call.voicemail_left if call.voicemail else None,
            outside_note=f"answered outside the PBX on {call.answered_outside}",
        )

    @staticmethod
    def _anonymous(call: _Call) -> bool:
        return call.restricted or is_withheld_id(call.caller_raw)

    def _missed_reason(self, call: _Call) -> Reason:
        hours = self.settings.hours
        ended_at = call.ended_at if call.ended_at is not None else call.started_at
        if self._anonymous(call):
            return Reason.ANONYMOUS
        if call.closed or (hours is not None and not hours.is_open(ended_at)):
            return Reason.AFTER_HOURS
        if call.voicemail:
            return Reason.VOICEMAIL
        if call.queue_joined and (call.queue_abandoned or call.in_queue):
            return Reason.QUEUE_ABANDONED
        if call.ringing_at_hangup:
            return Reason.ABANDONED
        for status, reason in _DIAL_OUTCOMES:
            if status in call.dial_statuses:
                return reason
        if call.busy_state:
            return Reason.BUSY
        if call.answered_outside:
            return Reason.NO_ANSWER
        if call.pbx_answered_at is not None:
            return Reason.IVR
        return Reason.ABANDONED


_HANDLERS: dict[str, Callable[[AmiCorrelator, _Channel, AmiMessage, float], None]] = {
    "Newstate": AmiCorrelator._on_newstate,
    "Rename": AmiCorrelator._on_rename,
    "NewCallerid": AmiCorrelator._on_new_callerid,
    "DialBegin": AmiCorrelator._on_dial_begin,
    "DialEnd": AmiCorrelator._on_dial_end,
    "AgentConnect": AmiCorrelator._on_agent_connect,
    "BridgeEnter": AmiCorrelator._on_bridge_enter,
    "BridgeLeave": AmiCorrelator._on_bridge_leave,
    "BridgeDestroy": AmiCorrelator._on_bridge_destroy,
    "QueueCallerJoin": AmiCorrelator._on_queue_join,
    "QueueCallerAbandon": AmiCorrelator._on_queue_abandon,
    "QueueCallerLeave": AmiCorrelator._on_queue_leave,
    "MessageWaiting": AmiCorrelator._on_message_waiting,
    "Newexten": AmiCorrelator._on_newexten,
    "VarSet": AmiCorrelator._on_varset,
    "HangupRequest": AmiCorrelator._on_hangup_request,
    "SoftHangupRequest": AmiCorrelator._on_hangup_request,
    "Hangup": AmiCorrelator._on_hangup,
}

# Reporting events that never change a verdict: none names a channel of ours
# (RTCP does, but only with media statistics), and a read = system,call,agent
# user never gets them. ``is_noise`` skips them unparsed; parsed, they are quiet.
_REPORTING_EVENTS = (
    "DeviceStateChange",
    "Cdr",
    "BridgeCreate",
    "QueueMemberStatus",
    "LocalBridge",
    "RTCPSent",
    "RTCPReceived",
    "PeerStatus",
    "ContactStatus",
    "Registry",
    "ExtensionStatus",
)
# Events that never name a channel of ours and are expected: not worth counting.
_QUIET_UNPLACED = frozenset(
    {*_REPORTING_EVENTS, "FullyBooted", "SuccessfulAuth", "Reload", "CoreShowChannelsComplete"}
)


def _heads(*names: str) -> tuple[bytes, ...]:
    """The events' first lines, whole (CRLF or bare LF), for one startswith() in C."""
    return tuple(f"Event: {name}{end}".encode() for name in names for end in ("\r\n", "\n"))


# What is noise, as the first line names it: the reporting events, and VarSet
# but for the variables below.
_NOISE_HEADS = _heads("VarSet", *_REPORTING_EVENTS)
_VARSET_HEADS = _heads("VarSet")
_NEWEXTEN_HEADS = _heads("Newexten")
# The VarSet variables ``_on_varset`` reads (FROM_DID may be inherited: _ or __).
_USED_VARIABLES = frozenset({b"VMSTATUS", b"FROM_DID", b"_FROM_DID", b"__FROM_DID"})


def is_noise(frame: bytes | bytearray) -> bool:
    """Whether a raw AMI frame can be dropped unparsed: nothing in it can change a verdict.

    Half of a busy PBX's events are VarSet; reading one line of each instead
    of parsing it is most of the daemon's speed. Anything unsure is kept.
    """
    if not frame.startswith(_NOISE_HEADS) or b"\nActionID:" in frame:
        return False  # an event that can matter, or an answer to one of our own actions
    if not frame.startswith(_VARSET_HEADS):
        return True
    variable = _line_value(frame, b"Variable")
    return variable is not None and variable not in _USED_VARIABLES


def _line_value(frame: bytes | bytearray, key: bytes) -> bytes | None:
    """The value of the first ``key: value`` line after the first line, raw; None if none."""
    at = frame.find(b"\n" + key + b": ")
    if at < 0:
        return None
    start = at + len(key) + 3
    end = frame.find(b"\n", start)
    return bytes(frame[start:] if end < 0 else frame[start:end]).rstrip(b"\r")


def _matches(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


# A PBX has a few dozen contexts and every event names one: match each once.
# Keyed by the patterns too, so a reload with other settings sees fresh answers.
@functools.lru_cache(maxsize=1024)
def _context_flags(
    context: str, voicemail: tuple[str, ...], closed: tuple[str, ...]
) -> tuple[bool, bool]:
    """Whether ``context`` is a voicemail context, and whether a closed one."""
    return _matches(context, voicemail), _matches(context, closed)


def _clean_name(name: str) -> str:
    return "" if name.strip() in ("<unknown>", "") else name.strip()


def _duration(text: str) -> float:
    """CoreShowChannel ``Duration`` (``hh:mm:ss``) in seconds; 0 when unreadable."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return 0.0
    hours, minutes, seconds = (int(p) for p in parts)
    return float(hours * 3600 + minutes * 60 + seconds)
