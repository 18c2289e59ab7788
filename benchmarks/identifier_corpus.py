"""Writes the identifier corpus and its held-out FAQ check set (benchmarks/data/).

    uv run python benchmarks/identifier_corpus.py   # rewrites identifiers.jsonl and faq.jsonl

Short runbook-style passages about an imaginary homelab, dense in what operators type and
embeddings blur: acronyms (UPS, NAS, VLAN, IT), model numbers (SMT1500), IP addresses,
hostnames, ports, versions, error codes and CVE ids. Each passage comes with the questions an
operator would ask of it, each marked ``identifier`` (it names an exact token of the passage:
an address, a version, a code) or ``acronym`` (an acronym plus ordinary words). Every value is
drawn without repeats, so each question has one right passage; the passages of one kind share
their wording, so the questions must be answered by what differs: the identifiers.

``faq.jsonl`` holds other questions about the same passages, worded as a FAQ page would
(terser, or the other way round: "which host is 10.0.20.7?"). They are held out: nothing in
the project is chosen by them; ``make bench-retrieval`` reports them for the default mode only.

The templates and the values are written for this project and licensed with it (Apache-2.0,
see benchmarks/data/README.md); the seed makes the output the same on every run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SEED = 19
PER_KIND = 14

Q = tuple[str, str]  # (kind, question)


@dataclass
class Passage:
    text: str
    questions: list[Q]
    faq: list[Q] = field(default_factory=list)


class Values:
    """Draws values without repeats, so no two passages share an identifier."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(10_000):
            value = make()
            if value not in self.taken:
                self.taken.add(value)
                return value
        raise ValueError(f"no value left like {value!r}")

    def ip(self, subnet: int | None = None) -> str:
        third = subnet if subnet is not None else self.rng.choice([10, 20, 30, 40, 50, 60])
        return self.unique(lambda: f"10.0.{third}.{self.rng.randint(2, 250)}")

    def host(self, role: str) -> str:
        return self.unique(lambda: f"{role}-{self.rng.randint(1, 99):02d}")

    def version(self, major: int, minors: int = 40) -> str:
        return self.unique(
            lambda: f"{major}.{self.rng.randint(0, minors)}.{self.rng.randint(0, 20)}"
        )

    def port(self) -> str:
        return self.unique(lambda: str(self.rng.choice([self.rng.randint(1024, 65000)])))

    def pick(self, pool: list[str]) -> str:
        return self.unique(lambda: self.rng.choice(pool))

    def code(self, prefix: str, digits: int = 4) -> str:
        return self.unique(
            lambda: f"{prefix}{self.rng.randint(10 ** (digits - 1), 10**digits - 1)}"
        )

    def cve(self) -> str:
        return self.unique(
            lambda: f"CVE-{self.rng.randint(2019, 2026)}-{self.rng.randint(1000, 49999)}"
        )

    def mac(self) -> str:
        return self.unique(lambda: ":".join(f"{self.rng.randint(0, 255):02x}" for _ in range(6)))


ROOMS = [
    "garage",
    "attic",
    "basement",
    "office",
    "hallway",
    "loft",
    "shed",
    "study",
    "workshop",
    "pantry",
    "closet",
    "cellar",
    "den",
    "laundry",
    "guest room",
    "porch",
]
UPS_MODELS = [
    "SMT1500",
    "SMT750",
    "SMT2200",
    "SMC1000",
    "BX1500M",
    "BR1500G",
    "SMX3000",
    "CP1500PFCLCD",
    "CP900AVR",
    "OR1500LCDRM1U",
    "PR1500RT2U",
    "5P1550R",
    "5S1000",
    "EC850LCD",
    "SU1500RTXL",
    "BN900M",
]
NAS_MODELS = [
    "DS920+",
    "DS1821+",
    "DS224+",
    "RS1221+",
    "TS-464",
    "TS-873A",
    "DS418play",
    "DS723+",
    "TS-253D",
    "RS422+",
    "DS1522+",
    "TS-h686",
    "DS220j",
    "AS6704T",
    "DS3622xs+",
    "TS-431K",
]
SHARES = [
    "media",
    "photos",
    "backups",
    "isos",
    "projects",
    "scans",
    "music",
    "homes",
    "archive",
    "vmstore",
    "timemachine",
    "downloads",
    "surveillance",
    "docs",
    "games",
    "builds",
]
SERVICES = [
    ("Grafana", "grafana"),
    ("Prometheus", "prometheus"),
    ("Loki", "loki"),
    ("Home Assistant", "hass"),
    ("Jellyfin", "jellyfin"),
    ("Nextcloud", "nextcloud"),
    ("Gitea", "gitea"),
    ("Vaultwarden", "vaultwarden"),
    ("MinIO", "minio"),
    ("Paperless-ngx", "paperless"),
    ("Uptime Kuma", "kuma"),
    ("Mosquitto", "mqtt"),
    ("Zigbee2MQTT", "z2m"),
    ("Immich", "immich"),
    ("Authentik", "authentik"),
    ("Harbor", "harbor"),
    ("Traefik", "traefik"),
    ("ArgoCD", "argocd"),
]
PACKAGES = [
    "openssh-server",
    "xz-utils",
    "glibc",
    "openssl",
    "sudo",
    "curl",
    "containerd",
    "runc",
    "nginx",
    "systemd",
    "bind9",
    "samba",
    "libwebp",
    "polkit",
    "dnsmasq",
    "git",
]
MEANINGS = [
    ("the disk quota of the bucket is exhausted", "raise the quota or prune old objects"),
    ("the TLS handshake failed because the client clock is skewed", "resync chrony on the client"),
    (
        "the database refused the connection: too many clients",
        "raise max_connections or add a pooler",
    ),
    ("the upstream timed out after 60 seconds", "raise proxy_read_timeout or fix the slow query"),
    ("the API token expired", "issue a new token from the admin page"),
    ("the volume is mounted read-only after an I/O error", "run fsck and remount read-write"),
    ("the license server is unreachable", "allow outbound 443 to the vendor"),
    ("the config file has a YAML indentation error", "validate it with yamllint"),
    ("the container image pull was rate-limited", "use the local Harbor mirror"),
    ("the battery self-test failed", "replace the battery cartridge"),
    ("the replication lag passed five minutes", "check the WAL sender on the primary"),
    ("the LDAP bind password is wrong", "rotate it in the secret and restart the pod"),
    ("the node ran out of inodes", "clean up /var/lib/containerd snapshots"),
    ("the firmware signature check failed", "download the image again and verify its SHA-256"),
    ("the webhook returned HTTP 500", "read the receiver's logs for the stack trace"),
    ("the lease on the leader lock was lost", "check etcd latency on the control plane"),
]
CLUSTERS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]
DRIVES = ["WD Red Plus 8TB", "Seagate IronWolf 12TB", "Toshiba N300 6TB", "WD Ultrastar HC550 16TB"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DOMAINS = [
    "home.arpa",
    "lab.example",
    "house.lan",
    "rack.internal",
    "garage.lab",
    "nest.home",
    "den.lan",
    "attic.lab",
    "cellar.home",
    "barn.lab",
    "lake.lan",
    "hill.home",
    "oak.lab",
    "pine.lan",
    "elm.home",
    "fern.lab",
]
POOL_NAMES = ["web", "iot", "db", "lab", "media", "edge"]
ZFS_POOLS = ["tank", "vault", "data", "fast", "cold", "bulk"]
EXIT_STATUSES = ["EXEC", "CHDIR", "STDOUT", "USER", "NAMESPACE"]
BUCKETS = ["restic", "backup", "vault", "snap"]
MONTHS = ["January", "March", "April", "June", "July", "September", "October", "December"]


def ups(v: Values) -> Passage:
    room, model, ip = v.pick(ROOMS), v.pick(UPS_MODELS), v.ip(10)
    minutes, load = v.rng.randint(6, 45), v.rng.choice([180, 240, 300, 420, 560])
    return Passage(
        f"The {room} UPS is an APC {model} that gives {minutes} minutes of runtime at {load} W. "
        f"Its network management card answers at {ip}; NUT shuts the hosts down at 20% charge.",
        [
            ("acronym", f"How long does the {room} UPS last?"),
            ("identifier", f"What is the runtime of the {model}?"),
            ("identifier", f"Which UPS has its management card at {ip}?"),
        ],
        [("acronym", f"{room} UPS battery time?"), ("identifier", f"{model} minutes on battery")],
    )


def nas(v: Values) -> Passage:
    host, model, ip, share = v.host("nas"), v.pick(NAS_MODELS), v.ip(20), v.pick(SHARES)
    vlan = v.rng.choice([20, 30, 40])
    return Passage(
        f"{host} is a Synology {model} NAS at {ip}. It exports /volume1/{share} over NFS v4.1 "
        f"to VLAN {vlan} only; SMB is off.",
        [
            ("acronym", f"Which NAS exports the {share} share over NFS?"),
            ("identifier", f"What is the IP address of {host}?"),
            ("identifier", f"Which NAS is the {model}?"),
        ],
        [
            ("identifier", f"which host is {ip}?"),
            ("acronym", f"where do the {share} NFS files live"),
        ],
    )


def k3s(v: Values) -> Passage:
    cluster, node = v.pick(CLUSTERS), v.host("node")
    current, target = v.unique(lambda: f"v1.{v.rng.randint(26, 32)}.{v.rng.randint(0, 9)}+k3s1"), ""
    target = v.unique(lambda: f"v1.{v.rng.randint(27, 33)}.{v.rng.randint(0, 9)}+k3s1")
    return Passage(
        f"Cluster {cluster} runs k3s {current}. Upgrade it to {target} with the system-upgrade "
        f"controller, one node at a time, after draining {node}.",
        [
            ("identifier", f"What k3s version does cluster {cluster} run?"),
            ("identifier", f"Which cluster is on {current}?"),
            ("identifier", f"What should I drain before upgrading to {target}?"),
        ],
        [("identifier", f"{cluster} k3s upgrade target"), ("identifier", f"who runs {current}")],
    )


def cve(v: Values) -> Passage:
    cve_id, package, host = v.cve(), v.pick(PACKAGES), v.host("srv")
    bad, fixed = v.version(v.rng.randint(1, 9)), v.version(v.rng.randint(1, 9))
    return Passage(
        f"{cve_id} affects {package} {bad} on {host}. The Debian security update to {fixed} "
        f"fixes it; restart the dependent services after apt upgrade.",
        [
            ("identifier", f"Is {host} affected by {cve_id}?"),
            ("identifier", f"Which package does {cve_id} hit?"),
            ("identifier", f"What version of {package} fixes the hole on {host}?"),
        ],
        [("identifier", f"{cve_id} fix"), ("identifier", f"{package} {bad} vulnerable?")],
    )


def error_code(v: Values) -> Passage:
    name, _ = SERVICES[v.rng.randrange(len(SERVICES))]
    code = v.code(v.rng.choice(["E", "ERR-", "0x", "BX", "W"]), v.rng.choice([3, 4]))
    meaning, fix = v.pick([m for m, _ in MEANINGS]), ""
    fix = dict(MEANINGS)[meaning]
    return Passage(
        f"Error {code} from {name} means {meaning}. Fix: {fix}. The alert for it fires after "
        f"three occurrences in ten minutes.",
        [
            ("identifier", f"What does error {code} mean?"),
            ("identifier", f"How do I fix {code} in {name}?"),
        ],
        [("identifier", f"{code}?"), ("identifier", f"{name} shows {code}, what now")],
    )


def port(v: Values) -> Passage:
    (name, slug), host, number = SERVICES[v.rng.randrange(len(SERVICES))], v.host("app"), v.port()
    cidr = f"10.0.{v.rng.choice([10, 20, 30, 40])}.0/24"
    return Passage(
        f"{name} listens on port {number}/tcp on {host} ({slug}.lan). The nftables rule allows "
        f"it from {cidr} only; everything else is dropped.",
        [
            ("identifier", f"Which port does {name} use on {host}?"),
            ("identifier", f"What listens on port {number}?"),
        ],
        [
            ("identifier", f"{number}/tcp on {host}"),
            ("identifier", f"who may reach {host}:{number}"),
        ],
    )


def vlan(v: Values) -> Passage:
    number = v.unique(lambda: str(v.rng.randint(2, 400)))
    third = v.unique(lambda: str(v.rng.randint(61, 250)))
    purpose = v.pick(
        [
            "IoT",
            "cameras",
            "guests",
            "lab",
            "storage",
            "management",
            "kids",
            "VoIP",
            "DMZ",
            "printers",
            "backup",
            "media",
            "IT",
            "servers",
            "wireless",
            "sensors",
        ]
    )
    hours = v.rng.choice([2, 8, 12, 24, 72])
    return Passage(
        f"VLAN {number} ({purpose}) uses 10.0.{third}.0/24 with gateway 10.0.{third}.1 on the "
        f"OPNsense router; DHCP leases last {hours} hours.",
        [
            ("identifier", f"What's the gateway for VLAN {number}?"),
            ("identifier", f"Which VLAN is 10.0.{third}.0/24?"),
            ("acronym", f"How long are DHCP leases on the {purpose} VLAN?"),
        ],
        [
            ("identifier", f"VLAN {number} subnet"),
            ("identifier", f"10.0.{third}.1 is the gateway of?"),
        ],
    )


def dns(v: Values) -> Passage:
    fqdn = v.unique(lambda: f"{v.rng.choice(SERVICES)[1]}.{v.rng.choice(DOMAINS)}")
    slug, domain = fqdn.split(".", 1)
    name = {s: n for n, s in SERVICES}[slug]
    target = v.host("ingress")
    ttl, ip = v.rng.choice([60, 300, 3600]), v.ip(10)
    return Passage(
        f"{fqdn} is a CNAME for {target}.{domain} (TTL {ttl} s), served by the Pi-hole at "
        f"{ip}; {name} is reached through it.",
        [
            ("identifier", f"Where does {fqdn} point?"),
            ("identifier", f"Which DNS server answers at {ip}?"),
        ],
        [("identifier", f"{fqdn} CNAME"), ("identifier", f"what resolves to {target}.{domain}")],
    )


def smart(v: Values) -> Passage:
    host, bay = v.host("nas"), v.rng.randint(1, 8)
    serial = v.unique(lambda: f"ZL{v.rng.randint(100000, 999999)}")
    count, drive = v.rng.randint(8, 400), v.rng.choice(DRIVES)
    return Passage(
        f"Disk {serial} in {host} bay {bay} reports SMART attribute 5 (Reallocated_Sector_Ct) "
        f"at {count}. Replace it with a {drive} and let the RAID rebuild.",
        [
            ("identifier", f"Which bay holds disk {serial}?"),
            ("identifier", f"How many reallocated sectors does {serial} have?"),
        ],
        [("identifier", f"{serial} SMART"), ("identifier", f"replace {serial} with what")],
    )


def bgp(v: Values) -> Passage:
    asn = v.unique(lambda: f"AS{v.rng.randint(64512, 65534)}")
    pool = v.unique(lambda: f"pool-{v.rng.choice(POOL_NAMES)}{v.rng.randint(1, 9)}")
    third = v.unique(lambda: str(v.rng.randint(100, 250)))
    router = v.host("rtr")
    return Passage(
        f"MetalLB advertises {pool} (10.0.{third}.10-10.0.{third}.60) over BGP from {asn} to "
        f"{router}; the hold time is 90 s.",
        [
            ("acronym", f"Which AS does MetalLB use for {pool}?"),
            ("identifier", f"Who peers with {asn}?"),
            ("identifier", f"Which address pool hands out 10.0.{third}.10?"),
        ],
        [("identifier", f"{asn} BGP peer"), ("identifier", f"{pool} range")],
    )


def cert(v: Values) -> Passage:
    domain, issuer = (
        v.pick(DOMAINS),
        v.pick(
            [
                "letsencrypt-prod",
                "letsencrypt-staging",
                "step-ca",
                "vault-pki",
                "zerossl",
                "buypass",
                "internal-ca",
                "smallstep",
                "google-cas",
                "acme-dns",
                "ca-root",
                "ca-inter",
                "lab-issuer",
                "home-issuer",
                "dev-issuer",
                "edge-issuer",
            ]
        ),
    )
    date = f"{v.rng.randint(1, 28)} {v.rng.choice(MONTHS)} {v.rng.randint(2026, 2028)}"
    return Passage(
        f"The TLS wildcard certificate for *.{domain} expires on {date}. The cert-manager "
        f"ClusterIssuer {issuer} renews it 30 days before, with a DNS-01 challenge.",
        [
            ("acronym", f"When does the TLS certificate for *.{domain} expire?"),
            ("identifier", f"Which ClusterIssuer is {issuer} used for?"),
        ],
        [("identifier", f"*.{domain} expiry"), ("identifier", f"what does {issuer} renew")],
    )


def idrac(v: Values) -> Passage:
    host, ip = v.host("pve"), v.ip(50)
    firmware = v.unique(
        lambda: (
            f"{v.rng.randint(2, 7)}.{v.rng.randint(0, 99)}."
            f"{v.rng.randint(0, 99)}.{v.rng.randint(0, 99)}"
        )
    )
    return Passage(
        f"The iDRAC of {host} is at {ip} on the IPMI VLAN, firmware {firmware}. If the web UI "
        f"hangs, run racadm racreset from the host.",
        [
            ("acronym", f"What is the iDRAC address of {host}?"),
            ("identifier", f"Which server's iDRAC runs firmware {firmware}?"),
            ("identifier", f"Whose IPMI interface is {ip}?"),
        ],
        [("identifier", f"{host} iDRAC"), ("identifier", f"firmware {firmware} host")],
    )


def zfs(v: Values) -> Passage:
    pool = v.unique(lambda: f"{v.rng.choice(ZFS_POOLS)}{v.rng.randint(0, 9)}")
    host, disks, size = v.host("nas"), v.rng.choice([4, 6, 8]), v.rng.choice([4, 8, 12, 16])
    day, arc = v.rng.choice(DAYS), v.rng.choice([8, 16, 32, 48])
    return Passage(
        f"ZFS pool {pool} on {host} is a RAIDZ2 of {disks}x{size} TB. A scrub runs every "
        f"{day}; the ARC is capped at {arc} GiB.",
        [
            ("acronym", f"How big is the ZFS pool on {host}?"),
            ("identifier", f"When is {pool} scrubbed?"),
        ],
        [("identifier", f"{pool} layout"), ("acronym", f"ARC size on {host}")],
    )


def postgres(v: Values) -> Passage:
    db = v.pick([s for _, s in SERVICES])
    host, version, number = (
        v.host("db"),
        v.unique(lambda: f"{v.rng.randint(13, 17)}.{v.rng.randint(1, 12)}"),
        v.port(),
    )
    connections = v.rng.choice([100, 200, 300, 500])
    return Passage(
        f"The {db} database runs PostgreSQL {version} on {host}:{number} with "
        f"max_connections={connections}; PgBouncer fronts it in transaction mode.",
        [
            ("identifier", f"Which PostgreSQL version does the {db} database use?"),
            ("identifier", f"What runs on {host}:{number}?"),
        ],
        [("identifier", f"{db} db port"), ("identifier", f"postgres {version} host")],
    )


def wireguard(v: Values) -> Passage:
    peer = v.pick(
        [
            "phone-anna",
            "laptop-ben",
            "tablet-cleo",
            "phone-dev",
            "laptop-eva",
            "vps-fra1",
            "vps-ams2",
            "laptop-finn",
            "phone-gus",
            "nuc-hana",
            "pi-iris",
            "laptop-jon",
            "phone-kai",
            "vps-nyc3",
            "desk-lena",
            "phone-max",
        ]
    )
    tunnel, endpoint = (
        v.unique(lambda: f"10.8.0.{v.rng.randint(2, 250)}"),
        v.unique(lambda: f"198.51.100.{v.rng.randint(2, 250)}"),
    )
    return Passage(
        f"WireGuard peer {peer} has tunnel address {tunnel}/32 and connects to {endpoint}:51820; "
        f"PersistentKeepalive is 25 s.",
        [
            ("identifier", f"What is the tunnel IP of {peer}?"),
            ("identifier", f"Which peer is {tunnel}?"),
        ],
        [("identifier", f"{peer} wg address"), ("identifier", f"who is {tunnel} on the VPN")],
    )


def systemd(v: Values) -> Passage:
    unit = v.pick(
        [
            "backup-restic",
            "node-exporter",
            "zfs-scrub",
            "certbot-renew",
            "rclone-sync",
            "smartd-report",
            "docker-prune",
            "borg-nightly",
            "nut-monitor",
            "chrony-check",
            "snapraid-sync",
            "photo-import",
            "dyndns-update",
            "log-ship",
            "mqtt-bridge",
            "kopia-snap",
        ]
    )
    host, status = (
        v.host("srv"),
        v.unique(
            lambda: f"{v.rng.choice([200, 203, 209, 217, 226])}/{v.rng.choice(EXIT_STATUSES)}"
        ),
    )
    return Passage(
        f"{unit}.service on {host} fails with status={status} when its ExecStart path is "
        f"wrong; check it with systemctl cat {unit} and journalctl -u {unit}.",
        [
            ("identifier", f"Why does {unit}.service fail on {host}?"),
            ("identifier", f"Which unit fails with status={status}?"),
        ],
        [("identifier", f"{unit} status={status}"), ("identifier", f"{unit}.service broken")],
    )


def kernel(v: Values) -> Passage:
    node, kernel_version = (
        v.host("node"),
        v.unique(lambda: f"6.{v.rng.randint(1, 12)}.{v.rng.randint(0, 60)}"),
    )
    driver, firmware = (
        v.rng.choice(["ixgbe", "i40e", "r8169", "igc", "mlx5_core", "bnxt_en"]),
        v.version(v.rng.randint(1, 9), 20),
    )
    return Passage(
        f"Node {node} boots kernel {kernel_version}. Its NIC driver {driver} needs firmware "
        f"{firmware} or newer, else the link flaps under load.",
        [
            ("identifier", f"Which kernel does {node} boot?"),
            ("acronym", f"What NIC firmware does {node} need?"),
        ],
        [("identifier", f"kernel {kernel_version} node"), ("identifier", f"{node} link flaps")],
    )


def pdu(v: Values) -> Passage:
    pdu_name, outlet, host = v.host("pdu"), v.rng.randint(1, 16), v.host("pve")
    switch, budget = v.host("sw"), v.rng.choice([65, 120, 190, 370])
    return Passage(
        f"Outlet {outlet} of {pdu_name} feeds {host}. The PoE budget of switch {switch} is "
        f"{budget} W, so the cameras go on its ports 1-8 only.",
        [
            ("acronym", f"Which PDU outlet powers {host}?"),
            ("acronym", f"What is the PoE budget of {switch}?"),
        ],
        [("identifier", f"{host} power outlet"), ("identifier", f"{switch} PoE watts")],
    )


def mac(v: Values) -> Passage:
    host, address, ip = (
        v.host(v.rng.choice(["cam", "tv", "printer", "hub", "thermo"])),
        v.mac(),
        v.ip(40),
    )
    return Passage(
        f"{host} has MAC {address}; the DHCP reservation on the router gives it {ip}. Rename it "
        f"in the reservation list, not on the device.",
        [
            ("identifier", f"Which device has MAC {address}?"),
            ("identifier", f"What address does {host} get?"),
        ],
        [("identifier", f"{address}"), ("identifier", f"who holds {ip}")],
    )


def restic(v: Values) -> Passage:
    repo = v.unique(lambda: f"s3:https://minio.lan/{v.rng.choice(BUCKETS)}-{v.rng.randint(1, 99)}")
    host, keep = v.host("srv"), v.rng.choice([7, 14, 30, 60])
    return Passage(
        f"restic backs up {host} to {repo} nightly and keeps {keep} daily snapshots. "
        f"'Fatal: unable to open config file' means the bucket name is wrong.",
        [
            ("identifier", f"Where does {host} keep its restic backups?"),
            ("identifier", f"How many snapshots does {repo} keep?"),
        ],
        [("identifier", f"{host} backup repo"), ("identifier", f"{repo} retention")],
    )


def http_status(v: Values) -> Passage:
    (name, slug), code = (
        SERVICES[v.rng.randrange(len(SERVICES))],
        v.rng.choice(["502", "503", "504", "413", "421"]),
    )
    host = v.host("ingress")
    pod = v.unique(lambda: f"{slug}-{v.rng.randint(1000, 9999):x}")
    return Passage(
        f"HTTP {code} from ingress-nginx on {host} for {name} means pod {pod} is not ready; "
        f"kubectl describe pod {pod} shows the failing probe.",
        [
            ("identifier", f"Why does {host} return {code} for {name}?"),
            ("identifier", f"Which pod is {pod}?"),
        ],
        [("identifier", f"{pod} not ready"), ("identifier", f"{host} {code}")],
    )


KINDS: list[Callable[[Values], Passage]] = [
    ups,
    nas,
    k3s,
    cve,
    error_code,
    port,
    vlan,
    dns,
    smart,
    bgp,
    cert,
    idrac,
    zfs,
    postgres,
    wireguard,
    systemd,
    kernel,
    pdu,
    mac,
    restic,
    http_status,
]


def passages(rng: random.Random) -> Iterator[Passage]:
    values = Values(rng)
    for make in KINDS:
        for _ in range(PER_KIND):
            yield make(values)


def main() -> None:
    rng = random.Random(SEED)  # noqa: S311 - made-up values, not secrets
    corpus: list[dict[str, object]] = []
    faq: list[dict[str, str]] = []
    all_passages = list(passages(rng))
    rng.shuffle(all_passages)
    for number, passage in enumerate(all_passages, start=1):
        passage_id = f"i{number:03d}"
        corpus.append(
            {
                "id": passage_id,
                "text": passage.text,
                "questions": [{"kind": k, "question": q} for k, q in passage.questions],
            }
        )
        faq.extend({"id": passage_id, "kind": k, "question": q} for k, q in passage.faq)
    DATA.mkdir(exist_ok=True)
    with (DATA / "identifiers.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in corpus)
    # The held-out check asks a fixed sample of 150, drawn after the corpus, so the corpus
    # does not change with the sample's size.
    sample = sorted(rng.sample(range(len(faq)), 150))
    with (DATA / "faq.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(faq[i], ensure_ascii=False) + "\n" for i in sample)
    print(
        f"{len(corpus)} passages, {sum(len(p.questions) for p in all_passages)} questions, "
        f"{len(sample)} FAQ questions"
    )


if __name__ == "__main__":
    main()
