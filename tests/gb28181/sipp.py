"""SIPp scenarios for the gateway, written per test: SIPp (Debian's sip-tester) is the real SIP
peer; it plays a GB/T 28181 device from the published message formats."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

MAX_SCENARIO = 60_000  # SIPp 3.6 cannot load a scenario file much over 64 KB
HEAD = '<?xml version="1.0" encoding="ISO-8859-1"?>\n<scenario name="gb28181">\n'


class Scenario:
    """Steps of one SIPp call (one device): requests sent, answers expected."""

    def __init__(self, device_id: str, domain: str, edition: int = 2016) -> None:
        self.device_id = device_id
        self.domain = domain
        self.edition = edition
        self.cseq = 0
        self.steps: list[bytes] = []

    def _headers(self, method: str, to_user: str) -> str:
        self.cseq += 1
        ver = "X-GB-Ver: 3.0\n" if self.edition == 2022 else ""
        return (
            f"{method} sip:{self.domain}@[remote_ip]:[remote_port] SIP/2.0\n"
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]\n"
            f"From: <sip:{self.device_id}@{self.domain}>;tag=[pid]SIPpTag[call_number]\n"
            f"To: <sip:{to_user}@{self.domain}>\n"
            "Call-ID: [call_id]\n"
            f"CSeq: {self.cseq} {method}\n"
            "Max-Forwards: 70\n"
            "User-Agent: SIPp GB/T 28181 device\n"
            f"{ver}"
        )

    def _send(self, text: bytes) -> None:
        self.steps.append(b'<send retrans="500"><![CDATA[\n' + text + b"\n]]></send>\n")

    def _recv(self, status: int, auth: bool = False) -> None:
        extra = ' auth="true"' if auth else ""
        self.steps.append(f'<recv response="{status}"{extra} timeout="15000"/>\n'.encode())

    def register(self, password: str, expect: int = 200, expires: int = 3600) -> Scenario:
        contact = f"Contact: <sip:{self.device_id}@[local_ip]:[local_port]>\nExpires: {expires}\n"
        first = self._headers("REGISTER", self.device_id) + contact + "Content-Length: 0\n"
        self._send(first.encode())
        self._recv(401, auth=True)
        second = (
            self._headers("REGISTER", self.device_id)
            + contact
            + f"[authentication username={self.device_id} password={password}]\n"
            + "Content-Length: 0\n"
        )
        self._send(second.encode())
        self._recv(expect)
        return self

    def register_refused(self) -> Scenario:
        """A REGISTER refused at once (403, no challenge): the address is blocked."""
        contact = f"Contact: <sip:{self.device_id}@[local_ip]:[local_port]>\nExpires: 3600\n"
        self._send(
            (self._headers("REGISTER", self.device_id) + contact + "Content-Length: 0\n").encode()
        )
        self._recv(403)
        return self

    def message(self, body: bytes, expect: int = 200, method: str = "MESSAGE") -> Scenario:
        head = self._headers(method, self.domain) + "Content-Type: Application/MANSCDP+xml\n"
        self._send(head.encode() + b"Content-Length: [len]\n\n" + body)
        self._recv(expect)
        return self

    def raw(self, text: bytes, expect: int) -> Scenario:
        """A hand-made (malformed) request; its Call-ID and CSeq are the scenario's."""
        self.cseq += 1
        self._send(text.replace(b"{cseq}", str(self.cseq).encode()))
        self._recv(expect)
        return self

    def xml(self) -> bytes:
        out = HEAD.encode() + b"".join(self.steps) + b"</scenario>\n"
        if len(out) > MAX_SCENARIO:
            raise ValueError(f"scenario of {len(out)} bytes: SIPp 3.6 reads at most ~64 KB")
        return out

    def size(self) -> int:
        return len(HEAD) + sum(map(len, self.steps))


def available() -> bool:
    return shutil.which("sipp") is not None


def run_sipp(
    scenario: Scenario, gateway_port: int, workdir: Path, local_port: int, transport: str = "u1"
) -> str:
    """Run one call of the scenario against the gateway; SIPp's output (asserts exit 0)."""
    path = workdir / f"gb-{scenario.device_id}-{scenario.cseq}.xml"
    path.write_bytes(scenario.xml())
    cmd = [
        "sipp", "-sf", str(path), "-m", "1", "-l", "1", "-t", transport, "-i", "127.0.0.1",
        "-p", str(local_port), "-timeout", "90s", "-timeout_error", "-nostdin", "-trace_err",
        "-buff_size", "1048576", f"127.0.0.1:{gateway_port}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, cwd=workdir, timeout=120)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    assert proc.returncode == 0, f"SIPp exit {proc.returncode}\n{out[-3000:]}\n{errors[-3000:]}"
    return out


def live_uas_xml(ssrc: str = "0100000001") -> bytes:
    """SIPp as the device's side of live view: answer the gateway's INVITE with an SDP (PS,
    sendonly), take the ACK, then the BYE (answered 200)."""
    return (
        HEAD + '<recv request="INVITE" timeout="60000"/>\n' + "<send><![CDATA[\n"
        "SIP/2.0 200 OK\n"
        "[last_Via:]\n"
        "[last_From:]\n"
        "[last_To:];tag=[pid]SIPpTag01[call_number]\n"
        "[last_Call-ID:]\n"
        "[last_CSeq:]\n"
        "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n"
        "Content-Type: APPLICATION/SDP\n"
        "Content-Length: [len]\n"
        "\n"
        "v=0\n"
        "o=- 0 0 IN IP4 [local_ip]\n"
        "s=Play\n"
        "c=IN IP4 [local_ip]\n"
        "t=0 0\n"
        "m=video [media_port] RTP/AVP 96\n"
        "a=sendonly\n"
        "a=rtpmap:96 PS/90000\n"
        f"y={ssrc}\n"
        "]]></send>\n"
        '<recv request="ACK" timeout="30000"/>\n'
        '<recv request="BYE" timeout="60000"/>\n'
        "<send><![CDATA[\n"
        "SIP/2.0 200 OK\n"
        "[last_Via:]\n"
        "[last_From:]\n"
        "[last_To:]\n"
        "[last_Call-ID:]\n"
        "[last_CSeq:]\n"
        "Content-Length: 0\n"
        "]]></send>\n"
        "</scenario>\n"
    ).encode()


def _answer(status: str, tag: bool, extra: str = "") -> str:
    to = "[last_To:];tag=[pid]SIPpTag01[call_number]" if tag else "[last_To:]"
    return (
        f"<send><![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n{to}\n[last_Call-ID:]\n"
        f"[last_CSeq:]\n{extra}Content-Length: 0\n]]></send>\n"
    )


def upper_platform_xml(
    lower_id: str, lower_domain: str, upper_id: str, password: str, catalog_sn: str
) -> bytes:
    """SIPp as an upper GB/T 28181 platform (a UAS) for the hub's upward link.

    The link's REGISTER gets a digest challenge; SIPp checks the answer itself (verifyauth:
    a wrong one gets 403), accepts it, then asks for the Catalog in the same call (a MESSAGE
    with a Query, answered 200 by the link) and takes the final REGISTER Expires: 0. Every
    MESSAGE the link sends on its own Call-ID (keepalives, catalog parts, alarms) starts a call
    of its own and is answered 200. The test reads what arrived in SIPp's message trace."""
    realm = upper_id[:10]
    query = (
        '<?xml version="1.0" encoding="GB2312"?>\n<Query>\n<CmdType>Catalog</CmdType>\n'
        f"<SN>{catalog_sn}</SN>\n<DeviceID>{lower_id}</DeviceID>\n</Query>\n"
    )
    return (
        HEAD
        + '<recv request="MESSAGE" optional="true" next="message"/>\n'
        + '<recv request="REGISTER"/>\n'
        + _answer(
            "401 Unauthorized",
            True,
            f'WWW-Authenticate: Digest realm="{realm}", nonce="[pid]n[call_number]c0ffee", '
            "algorithm=MD5\n",
        )
        + '<recv request="REGISTER" next="authok" test="authvalid">\n<action>'
        + f'<verifyauth assign_to="authvalid" username="{lower_id}" password="{password}"/>'
        + "</action>\n</recv>\n"
        + _answer("403 Forbidden", True)
        + '<nop next="end"/>\n'
        + '<label id="authok"/>\n'
        + _answer("200 OK", True, "Expires: 3600\n")
        + '<pause milliseconds="200"/>\n'
        + '<send retrans="500"><![CDATA[\n'
        + f"MESSAGE sip:{lower_id}@[remote_ip]:[remote_port] SIP/2.0\n"
        + "Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]\n"
        + f"From: <sip:{upper_id}@{realm}>;tag=[pid]SIPpTag02[call_number]\n"
        + f"To: <sip:{lower_id}@{lower_domain}>\n"
        + "Call-ID: [call_id]\nCSeq: 20 MESSAGE\nMax-Forwards: 70\n"
        + "Content-Type: Application/MANSCDP+xml\nContent-Length: [len]\n\n"
        + query
        + "]]></send>\n"
        + '<recv response="200" timeout="15000"/>\n'
        + '<recv request="REGISTER"/>\n'  # Expires: 0 when the link stops
        + _answer("200 OK", False, "Expires: 0\n")
        + '<nop next="end"/>\n'
        + '<label id="message"/>\n'
        + _answer("200 OK", True)
        + '<label id="end"/>\n'
        + "</scenario>\n"
    ).encode()
