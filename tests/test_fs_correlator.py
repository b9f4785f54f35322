"""The FreeSWITCH correlator on hand-built event sequences, for what the shared captures lack.

Field names and event order follow the real captures: voicemail answered inside a
loopback leg, a phone intercepting a ringing call, a follow-me forward that nobody
answers, resync after a reconnect, and lost hangups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textback.core.freeswitch import FsCorrelator, FsCorrelatorSettings
from textback.core.trunks import Trunk, TrunkMap
from textback.core.verdict import CallVerdict, Reason, Verdict

TRUNKS = TrunkMap(
    (
        Trunk(name="carrier-a", gateways=("carrier-a",)),
        Trunk(name="carrier-b", acls=("carrier-b",), networks=("127.0.0.3/32",)),
    )
)
A = "aaaaaaaa-0000-0000-0000-000000000001"


@dataclass
class Switch:
    """Builds events the way FreeSWITCH fills them in, and feeds them."""

    correlator: FsCorrelator = field(
        default_factory=lambda: FsCorrelator(FsCorrelatorSettings(trunks=TRUNKS))
    )
    now: float = 1000.0
    verdicts: list[CallVerdict] = field(default_factory=list)

    def send(self, name: str, uuid: str, **fields: str) -> None:
        event = {"Event-Name": name, "Unique-ID": uuid, **fields}
        self.verdicts += self.correlator.feed(event, self.now)

    def carrier_call(self, uuid: str = A, caller: str = "+14155550101") -> None:
        self.send(
            "CHANNEL_CREATE",
            uuid,
            **{
                "Channel-Name": f"sofia/external/{caller}@127.0.0.2",
                "Call-Direction": "inbound",
                "Caller-Caller-ID-Number": caller,
                "Caller-Context": "public",
                "variable_sip_gateway": "carrier-a",
                "variable_sip_to_user": "+12125550100",
                "variable_sofia_profile_name": "external",
            },
        )

    def leg(self, uuid: str, name: str, parent: str, **fields: str) -> None:
        self.send(
            "CHANNEL_CREATE",
            uuid,
            **{
                "Channel-Name": name,
                "Call-Direction": "outbound",
                "Other-Leg-Unique-ID": parent,
                "variable_originating_leg_uuid": parent,
                **fields,
            },
        )

    def loopback(self, a: str, b: str, parent: str, dest: str) -> None:
        self.leg(
            a,
            f"loopback/{dest}-a",
            parent,
            variable_loopback_from_uuid=parent,
            variable_other_loopback_leg_uuid=b,
            variable_loopback_leg="A",
        )
        self.send(
            "CHANNEL_CREATE",
            b,
            **{
                "Channel-Name": f"loopback/{dest}-b",
                "Call-Direction": "inbound",
                "variable_other_loopback_leg_uuid": a,
                "variable_other_loopback_from_uuid": parent,
                "variable_loopback_leg": "B",
                "Caller-Context": "lab-loopback",
            },
        )

    def bridge(self, a: str, b: str) -> None:
        self.send("CHANNEL_BRIDGE", a, **{"Bridge-A-Unique-ID": a, "Bridge-B-Unique-ID": b})

    def end(self, uuid: str = A, **fields: str) -> None:
        self.send("CHANNEL_HANGUP_COMPLETE", uuid, **fields)

    def judged(self) -> list[tuple[Verdict, Reason]]:
        return [(v.verdict, v.reason) for v in self.verdicts]


class TestAnswers:
    def test_voicemail_inside_a_loopback_leg_is_missed(self) -> None:
        """The A-leg bridges a loopback whose far side runs voicemail: no person, voicemail."""
        s = Switch()
        s.carrier_call()
        s.loopback("la", "lb", A, "vm-1001")
        s.leg("p1", "sofia/internal/1001@127.0.0.11", "lb")
        s.end("p1", **{"Hangup-Cause": "NO_ANSWER"})
        s.send("CHANNEL_EXECUTE", "lb", Application="voicemail")
        s.send("CHANNEL_ANSWER", "la")
        s.bridge(A, "la")
        s.end(
            **{
                "Hangup-Cause": "NORMAL_CLEARING",
                "variable_bridge_uuid": "la",
                "variable_originate_disposition": "SUCCESS",
            }
        )
        assert s.judged() == [(Verdict.MISSED, Reason.VOICEMAIL)]
        assert s.verdicts[0].voicemail_left is False

    def test_loopback_ring_group_answered_by_a_phone(self) -> None:
        """Phone bridges to the loopback's far side, then the A-leg to its near side: answered."""
        s = Switch()
        s.carrier_call()
        s.loopback("la", "lb", A, "1002")
        s.leg("p2", "sofia/internal/1002@127.0.0.12", "lb")
        s.bridge("lb", "p2")
        s.bridge(A, "la")
        s.end(**{"Hangup-Cause": "NORMAL_CLEARING"})
        assert s.judged() == [(Verdict.ANSWERED, Reason.ANSWERED)]

    def test_intercept_by_another_phone_answers_and_leaves_no_internal_call(self) -> None:
        """A phone dialling the intercept code takes the ringing call: answered, nothing else."""
        s = Switch()
        s.carrier_call()
        s.leg("p1", "sofia/internal/1001@127.0.0.11", A)
        s.send(
            "CHANNEL_CREATE",
            "i2",
            **{
                "Channel-Name": "sofia/internal/1002@127.0.0.1",
                "Call-Direction": "inbound",
                "Caller-Context": "default",
                "Caller-Caller-ID-Number": "1002",
            },
        )
        s.bridge(A, "i2")
        s.end("i2")
        s.end(**{"Hangup-Cause": "NORMAL_CLEARING"})
        assert s.judged() == [(Verdict.ANSWERED, Reason.ANSWERED)]

    def test_bridge_known_only_from_the_a_legs_variables(self) -> None:
        """Without bridge events, the A-leg's bridge_uuid to a phone still means answered."""
        s = Switch()
        s.carrier_call()
        s.end(**{"variable_bridge_uuid": "x", "variable_bridge_channel": "sofia/internal/1001"})
        assert s.judged() == [(Verdict.ANSWERED, Reason.ANSWERED)]

    def test_forward_to_a_mobile_can_count_as_missed(self) -> None:
        """external_answer = missed: a gateway leg answering does not answer the call."""
        settings = FsCorrelatorSettings(trunks=TRUNKS, external_answer_is_answer=False)
        s = Switch(correlator=FsCorrelator(settings))
        s.carrier_call()
        s.leg("m", "sofia/external/+14155550490", A, variable_sip_gateway_name="carrier-a")
        s.bridge(A, "m")
        s.end(**{"Hangup-Cause": "NORMAL_CLEARING", "variable_originate_disposition": "SUCCESS"})
        assert s.judged() == [(Verdict.MISSED, Reason.NO_ANSWER)]
        assert "outside" in s.verdicts[0].note


class TestMissedReasons:
    def test_followme_abandoned_while_the_mobile_rings(self) -> None:
        """Caller gives up while the forward rings: abandoned, whatever failed before."""
        s = Switch()
        s.carrier_call()
        s.leg("m", "sofia/external/+14155550490", A, variable_sip_gateway_name="carrier-a")
        s.end(
            **{
                "Hangup-Cause": "ORIGINATOR_CANCEL",
                "variable_originate_disposition": "ORIGINATOR_CANCEL",
                "variable_originate_failed_cause": "NO_ANSWER",
            }
        )
        assert s.judged() == [(Verdict.MISSED, Reason.ABANDONED)]

    def test_ip_trunk_by_network_and_privacy_flag(self) -> None:
        """A carrier known by address; Caller-Privacy-Hide-Number makes a real number anonymous."""
        s = Switch()
        s.send(
            "CHANNEL_CREATE",
            A,
            **{
                "Channel-Name": "sofia/external/anonymous@127.0.0.3",
                "Call-Direction": "inbound",
                "Caller-Caller-ID-Number": "14155550109",
                "variable_sip_network_ip": "127.0.0.3",
                "Caller-Privacy-Hide-Number": "true",
                "variable_sip_to_user": "12125550100",
            },
        )
        s.end(**{"Hangup-Cause": "ORIGINATOR_CANCEL"})
        assert s.judged() == [(Verdict.MISSED, Reason.ANONYMOUS)]
        assert (s.verdicts[0].trunk, s.verdicts[0].anonymous) == ("carrier-b", True)


class TestKindsAndNotices:
    def test_phone_dialling_out_is_outbound_and_announced(self) -> None:
        """An extension's call out through a gateway is ignored as outbound, and told mid-call."""
        s = Switch()
        s.send(
            "CHANNEL_CREATE",
            "o1",
            **{
                "Channel-Name": "sofia/internal/1001@127.0.0.1",
                "Call-Direction": "inbound",
                "Caller-Context": "default",
                "Caller-Caller-ID-Number": "1001",
            },
        )
        s.leg(
            "o2",
            "sofia/external/+14155550150",
            "o1",
            variable_sip_gateway_name="carrier-a",
            **{"Caller-Destination-Number": "+14155550150"},
        )
        notices = s.correlator.pop_notices()
        s.end("o1", **{"Hangup-Cause": "ORIGINATOR_CANCEL"})
        assert [(n.kind, n.number, n.trunk) for n in notices] == [
            ("dialed_out", "+14155550150", "carrier-a")
        ]
        assert s.judged() == [(Verdict.IGNORED, Reason.OUTBOUND)]


class TestTimeAndResync:
    def test_call_that_ended_while_disconnected_is_unknown(self) -> None:
        """A tracked A-leg missing from show channels ended unseen: unknown, never missed."""
        s = Switch()
        s.carrier_call()
        s.verdicts += s.correlator.resync([], s.now)
        assert s.judged() == [(Verdict.UNKNOWN, Reason.UNKNOWN)]

    def test_lost_hangup_expires_as_unknown_and_state_is_dropped(self) -> None:
        """No end within max age: unknown; nothing of the call stays in memory."""
        settings = FsCorrelatorSettings(trunks=TRUNKS, max_call_age_seconds=60.0)
        s = Switch(correlator=FsCorrelator(settings))
        s.carrier_call()
        s.now += 60
        s.verdicts += s.correlator.on_timer(s.now)
        assert s.judged() == [(Verdict.UNKNOWN, Reason.UNKNOWN)]
        assert s.correlator.calls_in_progress == 0
        assert s.correlator.next_deadline() is None
