"""The Asterisk correlator on hand-built event sequences: the rules the captures imply.

Each sequence mirrors what Asterisk emits (field names and order as in the real
captures), cut down to the events that matter, for the situations the shared
captures do not hold: pickup, voicemail inside a Local channel, originated
calls, resync after a reconnect, lost hangups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textback.core.asterisk import AmiCorrelator, CorrelatorSettings
from textback.core.hours import OpeningHours
from textback.core.trunks import Trunk, TrunkMap
from textback.core.verdict import CallVerdict, Reason, Verdict

TRUNKS = TrunkMap(
    (
        Trunk(name="carrier-a", channels=("PJSIP/carrier-a-*", "SIP/carrier-a-*")),
        Trunk(name="pstn", contexts=("from-pstn",)),
    )
)
CALLER = "PJSIP/carrier-a-00000001"


def settings(**overrides: object) -> CorrelatorSettings:
    base: dict[str, object] = {"trunks": TRUNKS, "grace_seconds": 2.0}
    base.update(overrides)
    return CorrelatorSettings(**base)  # type: ignore[arg-type]


@dataclass
class Pbx:
    """Builds events the way Asterisk fills them in, and feeds them."""

    correlator: AmiCorrelator
    now: float = 1000.0
    verdicts: list[CallVerdict] = field(default_factory=list)
    ids: dict[str, tuple[str, str]] = field(default_factory=dict)  # channel -> (uniqueid, linkedid)
    counter: int = 0

    def send(self, event: str, channel: str, **fields: str) -> None:
        uniqueid, linkedid = self.ids[channel]
        message = {"Event": event, "Channel": channel, "Uniqueid": uniqueid, "Linkedid": linkedid}
        message.update(fields)
        self.verdicts += self.correlator.feed(message, self.now)

    def new(
        self, channel: str, linked_to: str | None = None, state: str = "4", **fields: str
    ) -> None:
        self.counter += 1
        uniqueid = f"1795813000.{self.counter}"
        linkedid = self.ids[linked_to][0] if linked_to else uniqueid
        self.ids[channel] = (uniqueid, linkedid)
        fields.setdefault("Context", "from-trunk" if "carrier" in channel else "from-internal")
        fields.setdefault("Exten", "+12125550100")
        fields.setdefault("CallerIDNum", "+14155550199")
        self.send("Newchannel", channel, ChannelState=state, **fields)

    def relink(self, channel: str, to: str) -> None:
        self.ids[channel] = (self.ids[channel][0], self.ids[to][1])

    def dial(self, dialer: str, dest: str, status: str) -> None:
        self.send(
            "DialEnd", dialer, DestChannel=dest, DestUniqueid=self.ids[dest][0], DialStatus=status
        )

    def begin(self, dialer: str, dest: str) -> None:
        self.send("DialBegin", dialer, DestChannel=dest, DestUniqueid=self.ids[dest][0])

    def hangup(self, channel: str, cause: str = "16") -> None:
        self.send("Hangup", channel, Cause=cause)

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.verdicts += self.correlator.on_timer(self.now)

    def judged(self) -> list[tuple[Verdict, Reason]]:
        return [(v.verdict, v.reason) for v in self.verdicts]


def pbx(**overrides: object) -> Pbx:
    return Pbx(AmiCorrelator(settings(**overrides)))


class TestAnswerSignals:
    def test_pickup_by_another_phone_is_answered_and_leaves_no_internal_call(self) -> None:
        """A phone picking up the ringing call answers it; its own *8 call merges away."""
        p = pbx()
        p.new(CALLER)
        p.new("PJSIP/101-00000002", linked_to=CALLER, state="0")
        p.begin(CALLER, "PJSIP/101-00000002")
        p.new("PJSIP/103-00000003", Exten="*8", CallerIDNum="103", Context="from-internal")
        p.dial(CALLER, "PJSIP/103-00000003", "ANSWER")
        p.hangup("PJSIP/101-00000002", cause="26")
        p.relink("PJSIP/103-00000003", CALLER)
        p.send("Newstate", "PJSIP/103-00000003", ChannelState="6")
        p.hangup("PJSIP/103-00000003")
        p.hangup(CALLER)
        assert p.judged() == [(Verdict.ANSWERED, Reason.ANSWERED)]

    def test_local_channel_answer_alone_is_not_a_person(self) -> None:
        """Dial ANSWER to Local/...;1 whose ;2 half reached voicemail is a missed call."""
        p = pbx()
        p.new(CALLER)
        p.new("Local/101@ext-with-vm-00000001;1", linked_to=CALLER, state="0")
        p.new("Local/101@ext-with-vm-00000001;2", linked_to=CALLER)
        p.new("PJSIP/101-00000004", linked_to=CALLER, state="0")
        p.begin(CALLER, "Local/101@ext-with-vm-00000001;1")
        p.begin("Local/101@ext-with-vm-00000001;2", "PJSIP/101-00000004")
        p.dial("Local/101@ext-with-vm-00000001;2", "PJSIP/101-00000004", "NOANSWER")
        p.hangup("PJSIP/101-00000004")
        p.send(
            "Newstate", "Local/101@ext-with-vm-00000001;2", ChannelState="6", Context="ext-with-vm"
        )
        p.dial(CALLER, "Local/101@ext-with-vm-00000001;1", "ANSWER")
        p.send("Newstate", CALLER, ChannelState="6")
        p.send("BridgeEnter", CALLER, BridgeUniqueid="b1")
        p.send("BridgeEnter", "Local/101@ext-with-vm-00000001;1", BridgeUniqueid="b1")
        p.send("MessageWaiting", "Local/101@ext-with-vm-00000001;2", Mailbox="101@default")
        for channel in ("Local/101@ext-with-vm-00000001;2", "Local/101@ext-with-vm-00000001;1"):
            p.hangup(channel)
        p.hangup(CALLER)
        assert p.judged() == [(Verdict.MISSED, Reason.VOICEMAIL)]
        assert p.verdicts[0].voicemail_left is True

    def test_queue_agent_on_a_phone_channel_answers(self) -> None:
        """AgentConnect to a phone member (not a Local channel) is a person answering."""
        p = pbx()
        p.new(CALLER)
        p.send("Newstate", CALLER, ChannelState="6")
        p.send("QueueCallerJoin", CALLER, Queue="support")
        p.new("PJSIP/103-00000002", linked_to=CALLER, state="0")
        p.send("QueueCallerLeave", CALLER, Queue="support")
        p.send(
            "AgentConnect",
            CALLER,
            DestChannel="PJSIP/103-00000002",
            DestUniqueid=p.ids["PJSIP/103-00000002"][0],
        )
        p.hangup(CALLER)
        p.hangup("PJSIP/103-00000002")
        assert p.judged() == [(Verdict.ANSWERED, Reason.ANSWERED)]

    def test_forward_answered_outside_can_count_as_missed(self) -> None:
        """With external_answer = missed, a mobile answering a forward does not answer the call."""
        for external_is_answer, expected in ((True, Verdict.ANSWERED), (False, Verdict.MISSED)):
            p = pbx(external_answer_is_answer=external_is_answer)
            p.new(CALLER)
            p.new("PJSIP/carrier-a-00000009", linked_to=CALLER, state="0", Exten="s")
            p.dial(CALLER, "PJSIP/carrier-a-00000009", "ANSWER")
            p.hangup("PJSIP/carrier-a-00000009")
            p.hangup(CALLER)
            assert [expected] == [v.verdict for v in p.verdicts]
            assert [v for v in p.verdicts if v.trunk != "carrier-a"] == []

    def test_answered_stays_answered_through_transfer_to_voicemail(self) -> None:
        """A person answered, then sent the caller to voicemail: still answered."""
        p = pbx()
        p.new(CALLER)
        p.new("PJSIP/101-00000002", linked_to=CALLER, state="0")
        p.dial(CALLER, "PJSIP/101-00000002", "ANSWER")
        p.hangup("PJSIP/101-00000002")
        p.send("Newexten", CALLER, Application="VoiceMail", Context="sub-vm")
        p.hangup(CALLER)
        assert p.judged() == [(Verdict.ANSWERED, Reason.ANSWERED)]


class TestMissedReasons:
    def test_unregistered_extension_is_unavailable(self) -> None:
        """Dial CHANUNAVAIL with nothing after it: missed, unavailable."""
        p = pbx()
        p.new(CALLER)
        p.new("PJSIP/104-00000002", linked_to=CALLER, state="0")
        p.begin(CALLER, "PJSIP/104-00000002")
        p.dial(CALLER, "PJSIP/104-00000002", "CHANUNAVAIL")
        p.hangup("PJSIP/104-00000002")
        p.hangup(CALLER)
        assert p.judged() == [(Verdict.MISSED, Reason.UNAVAILABLE)]

    def test_withheld_presentation_makes_a_real_number_anonymous(self) -> None:
        """CALLERID(pres)=prohib_* on a later event flags the call anonymous."""
        p = pbx()
        p.new(CALLER, **{"ChanVariable[CALLERID(pres)]": "allowed_not_screened"})
        p.send("DialBegin", CALLER, **{"ChanVariable[CALLERID(pres)]": "prohib_not_screened"})
        p.hangup(CALLER, cause="127")
        assert p.judged() == [(Verdict.MISSED, Reason.ANONYMOUS)]
        assert p.verdicts[0].anonymous

    def test_newcallerid_restricted_presentation_is_anonymous(self) -> None:
        """NewCallerid's CID-CallingPres (numeric, described) also withholds the number."""
        p = pbx()
        p.new(CALLER)
        p.send("NewCallerid", CALLER, **{"CID-CallingPres": "32 (Presentation Prohibited)"})
        p.hangup(CALLER, cause="127")
        assert p.judged() == [(Verdict.MISSED, Reason.ANONYMOUS)]

    def test_outside_business_hours_is_after_hours(self) -> None:
        """A call ending while the business is closed is missed for after_hours."""
        closed_all_week = OpeningHours(timezone="UTC", weekly=((),) * 7)
        p = pbx(hours=closed_all_week)
        p.new(CALLER)
        p.hangup(CALLER, cause="127")
        assert p.judged() == [(Verdict.MISSED, Reason.AFTER_HOURS)]

    def test_context_only_trunk_and_did_from_from_did(self) -> None:
        """A trunk known only by its context is inbound; FROM_DID fills a DID of 's'."""
        p = pbx()
        p.new("DAHDI/1-1", Context="from-pstn", Exten="s")
        p.send("VarSet", "DAHDI/1-1", Variable="__FROM_DID", Value="2125550123")
        p.hangup("DAHDI/1-1")
        assert p.judged() == [(Verdict.MISSED, Reason.ABANDONED)]
        assert (p.verdicts[0].trunk, p.verdicts[0].did) == ("pstn", "2125550123")


class TestCallKinds:
    def test_originated_trunk_call_is_outbound_not_missed(self) -> None:
        """Click-to-call: the PBX dials the trunk first (Down, Ringing, Up), never Ring."""
        p = pbx()
        p.new(CALLER, state="0", Exten="s")
        p.send("Newstate", CALLER, ChannelState="5")
        p.hangup(CALLER)
        assert p.judged() == [(Verdict.IGNORED, Reason.OUTBOUND)]

    def test_chan_sip_inbound_starts_down_then_rings(self) -> None:
        """chan_sip's inbound channel is Down at Newchannel, then Ring: inbound."""
        p = pbx()
        p.new("SIP/carrier-a-00000001", state="0")
        p.send("Newstate", "SIP/carrier-a-00000001", ChannelState="4")
        p.hangup("SIP/carrier-a-00000001", cause="0")
        assert p.judged() == [(Verdict.MISSED, Reason.ABANDONED)]


class TestTimeAndMemory:
    def test_grace_waits_for_lingering_channels_then_decides(self) -> None:
        """After the caller hangs up a leftover channel delays the verdict by grace only."""
        p = pbx()
        p.new(CALLER)
        p.new("PJSIP/101-00000002", linked_to=CALLER, state="0")
        p.hangup(CALLER)
        assert p.verdicts == []
        assert p.correlator.next_deadline() == 1002.0
        p.tick(2.0)
        assert p.judged() == [(Verdict.MISSED, Reason.ABANDONED)]
        assert p.correlator.calls_in_progress == 0

    def test_lost_hangup_expires_as_unknown_after_max_age(self) -> None:
        """A call whose end never arrives is unknown after max_call_age, never missed."""
        p = pbx(max_call_age_seconds=600.0)
        p.new(CALLER)
        assert p.correlator.next_deadline() == 1600.0
        p.tick(599.0)
        assert p.verdicts == []
        p.tick(1.0)
        assert p.judged() == [(Verdict.UNKNOWN, Reason.UNKNOWN)]
        assert "max_call_age" in p.verdicts[0].note
        assert None is p.correlator.next_deadline()

    def test_many_finished_calls_leave_nothing_behind(self) -> None:
        """State is dropped on verdict: memory does not grow with call count."""
        p = pbx()
        for n in range(500):
            caller = f"PJSIP/carrier-a-{n:08x}"
            p.new(caller)
            p.send("BridgeEnter", caller, BridgeUniqueid=f"b{n}")
            p.hangup(caller)
        assert len(p.verdicts) == 500
        assert p.correlator.calls_in_progress == 0
        assert (len(p.correlator._channels), len(p.correlator._bridges)) == (0, 0)
        assert len(p.correlator._timers) <= 16


class TestResync:
    def test_call_that_ended_while_disconnected_is_unknown(self) -> None:
        """A tracked call missing from the snapshot ended unseen: unknown, not missed."""
        p = pbx()
        p.new(CALLER)
        p.verdicts += p.correlator.resync([], p.now)
        assert p.judged() == [(Verdict.UNKNOWN, Reason.UNKNOWN)]

    def test_answered_before_the_gap_stays_answered(self) -> None:
        """A call a person answered before the link dropped is answered, whatever followed."""
        p = pbx()
        p.new(CALLER)
        p.new("PJSIP/101-00000002", linked_to=CALLER, state="0")
        p.dial(CALLER, "PJSIP/101-00000002", "ANSWER")
        p.verdicts += p.correlator.resync([], p.now)
        assert p.judged() == [(Verdict.ANSWERED, Reason.ANSWERED)]

    def test_call_found_ringing_at_connect_is_judged_normally(self) -> None:
        """A call still ringing when we connect is tracked from the snapshot and can be missed."""
        p = pbx()
        snapshot = {
            "Event": "CoreShowChannel",
            "Channel": CALLER,
            "ChannelState": "4",
            "Uniqueid": "1795813000.50",
            "Linkedid": "1795813000.50",
            "Context": "from-trunk",
            "Exten": "+12125550100",
            "CallerIDNum": "+14155550199",
            "Duration": "00:00:07",
            "BridgeId": "",
        }
        p.verdicts += p.correlator.resync([snapshot], p.now)
        p.ids[CALLER] = ("1795813000.50", "1795813000.50")
        p.hangup(CALLER, cause="127")
        assert p.judged() == [(Verdict.MISSED, Reason.ABANDONED)]
        assert p.verdicts[0].started_at == 993.0

    def test_call_found_up_and_unbridged_is_never_missed(self) -> None:
        """A caller already Up at connect may have been helped: unknown unless a person shows."""
        p = pbx()
        snapshot = {
            "Event": "CoreShowChannel",
            "Channel": CALLER,
            "ChannelState": "6",
            "Uniqueid": "1795813000.60",
            "Linkedid": "1795813000.60",
            "Context": "sub-vm",
            "Exten": "s",
            "CallerIDNum": "+14155550199",
            "Duration": "00:01:00",
            "BridgeId": "",
        }
        p.verdicts += p.correlator.resync([snapshot], p.now)
        p.ids[CALLER] = ("1795813000.60", "1795813000.60")
        p.hangup(CALLER, cause="0")
        assert p.judged() == [(Verdict.UNKNOWN, Reason.UNKNOWN)]

    def test_snapshot_bridge_with_a_phone_is_answered(self) -> None:
        """A snapshot showing the caller bridged to a phone marks the call answered."""
        p = pbx()
        common = {
            "Event": "CoreShowChannel",
            "ChannelState": "6",
            "Linkedid": "1795813000.70",
            "Context": "from-internal",
            "Exten": "101",
            "CallerIDNum": "+14155550199",
            "Duration": "00:00:30",
            "BridgeId": "br-1",
        }
        snapshot = [
            {**common, "Channel": CALLER, "Uniqueid": "1795813000.70", "Context": "from-trunk"},
            {**common, "Channel": "PJSIP/101-00000002", "Uniqueid": "1795813000.71"},
        ]
        p.verdicts += p.correlator.resync(snapshot, p.now)
        p.ids[CALLER] = ("1795813000.70", "1795813000.70")
        p.ids["PJSIP/101-00000002"] = ("1795813000.71", "1795813000.70")
        p.hangup("PJSIP/101-00000002")
        p.hangup(CALLER)
        assert p.judged() == [(Verdict.ANSWERED, Reason.ANSWERED)]


class TestBadInput:
    def test_events_for_unknown_channels_are_counted_not_raised(self) -> None:
        """Events with missing or unknown ids are ignored and counted."""
        c = AmiCorrelator(settings())
        assert c.feed({"Event": "Hangup", "Uniqueid": "nope"}, 1.0) == []
        assert c.feed({"Event": "Newchannel"}, 1.0) == []
        assert c.feed({}, 1.0) == []
        assert c.ignored_events >= 2


class TestNotices:
    def test_answer_and_dial_out_are_announced_mid_call(self) -> None:
        """A person answering, and a phone dialling out a trunk, are told before the calls end."""
        p = pbx()
        p.new(CALLER)
        p.new("PJSIP/101-00000002", linked_to=CALLER, state="0")
        p.dial(CALLER, "PJSIP/101-00000002", "ANSWER")
        answered = p.correlator.pop_notices()
        p.new("PJSIP/102-00000003", Exten="4155550199", CallerIDNum="102")
        p.new("PJSIP/carrier-a-00000004", linked_to="PJSIP/102-00000003", state="0", Exten="s")
        p.send("NewCallerid", "PJSIP/carrier-a-00000004", CallerIDNum="14155550199")
        dialed = p.correlator.pop_notices()
        assert [(n.kind, n.number, n.trunk) for n in answered] == [
            ("answered", "+14155550199", "carrier-a")
        ]
        assert [(n.kind, n.number) for n in dialed] == [("dialed_out", "14155550199")]
        assert p.correlator.pop_notices() == []
        assert p.verdicts == []
