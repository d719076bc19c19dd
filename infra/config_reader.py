"""Reading raw stack config values, one problem recorded per bad key rather than one exception.

The Pulumi CLI passes every value as a string (arrays and objects as JSON); each reader parses
one kind of value and records `spillover:<key>: <why>` when it cannot, so the program can report
every bad key of a stack at once.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pulumi
from pulumi.runtime.config import is_config_secret

from spillover.config import ConfigError, SpilloverConfig, parse_config

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
"""A label's name part or value (63 characters at most)."""
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$"
)
"""A label key's optional prefix."""


class ConfigReader:
    """Reads raw stack config values, recording a problem per bad key instead of stopping."""

    def __init__(self, config: pulumi.Config) -> None:
        self._config = config
        self.problems: list[str] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(f"{self._config.name}:{key}: {reason}")

    def raw(self, key: str, required: bool = True) -> str | None:
        value = self._config.get(key)
        if value is None and required:
            self.problem(key, f"is not set: pulumi config set {key} <value>")
        return value

    def secret_file(self, key: str, what: str = "the whole file") -> pulumi.Output[str] | None:
        """A secret whose value is a whole file (a kubeconfig, a key), only handed on as a secret.

        Pulumi.yaml cannot mark these keys `secret: true`: they default to "" (a stack sets one
        of two ways to reach its cluster), and the CLI refuses a defaulted secret key (pulumi
        #21865). So the program refuses a value that was not set with --secret.
        """
        text = (self._config.get(key) or "").strip()
        if not text:
            self.problem(key, f"is not set: pulumi config set --secret {key} < <file> ({what})")
            return None
        if not is_config_secret(self._config.full_key(key)):
            self.problem(
                key,
                f"is stored in plain text; set it encrypted: pulumi config set --secret {key} "
                "< <file>",
            )
            return None
        return self._config.get_secret(key)

    def text(self, key: str, required: bool = True) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None if required else ""
        value = value.strip()
        if not value and required:
            self.problem(key, "is empty")
            return None
        return value

    def pattern(self, key: str, pattern: re.Pattern[str], meaning: str) -> str | None:
        value = self.text(key)
        if value is not None and not pattern.match(value):
            self.problem(key, f"must be {meaning}, got {value!r}")
            return None
        return value

    def count(self, key: str, minimum: int) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            self.problem(key, f"must be a whole number, got {value!r}")
            return None
        if number < minimum:
            self.problem(key, f"must be at least {minimum}, got {number}")
            return None
        return number

    def flag(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is None:
            return None
        if value.lower() not in ("true", "false"):
            self.problem(key, f"must be true or false, got {value!r}")
            return None
        return value.lower() == "true"

    def choice(self, key: str, options: tuple[str, ...]) -> Any:
        value = self.text(key)
        if value is not None and value not in options:
            self.problem(key, f"must be one of {', '.join(options)}; got {value!r}")
            return None
        return value

    def structured(self, key: str, kind: type) -> Any:
        value = self.raw(key)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, kind):
            self.problem(key, f"must be a{'n' if kind is list else ''} {kind.__name__}")
            return None
        return parsed

    def names(self, key: str, minimum: int, prefix: str = "") -> tuple[str, ...] | None:
        items = self.structured(key, list)
        if items is None:
            return None
        if any(not isinstance(item, str) or not item.startswith(prefix) for item in items):
            self.problem(key, f"must be a list of strings{f' starting {prefix}' if prefix else ''}")
            return None
        if len(set(items)) != len(items):
            self.problem(key, "lists an entry twice")
            return None
        if len(items) < minimum:
            self.problem(key, f"must list at least {minimum}, got {len(items)}")
            return None
        return tuple(items)

    def zones(self, key: str, region: str | None) -> tuple[str, ...] | None:
        zones = self.names(key, minimum=0)
        if zones is None:
            return None
        if len(zones) == 1:
            self.problem(key, "must list at least two zones: EKS needs subnets in two")
            return None
        strangers = [zone for zone in zones if region and not zone.startswith(region)]
        if strangers:
            self.problem(key, f"{', '.join(strangers)} not in awsRegion {region}")
            return None
        return zones

    def cidrs(self, key: str) -> tuple[str, ...] | None:
        ranges = self.names(key, minimum=0)
        if ranges is None:
            return None
        for cidr in ranges:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                self.problem(key, f"{cidr!r} is not a CIDR range")
                return None
        return ranges

    def public_ipv4_cidrs(self, key: str) -> tuple[str, ...] | None:
        """IPv4 ranges a public endpoint admits (EKS takes IPv4 only); never the whole internet."""
        ranges = self.names(key, minimum=0)
        if ranges is None:
            return None
        for cidr in ranges:
            try:
                network = ipaddress.IPv4Network(cidr)
            except ValueError:
                self.problem(key, f"{cidr!r} is not an IPv4 CIDR range (like 203.0.113.0/24)")
                return None
            if network.prefixlen == 0:
                self.problem(
                    key, f"{cidr!r} opens the Kubernetes API to the whole internet; list yours"
                )
                return None
        return ranges

    def vpc_cidr(self, key: str) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            network = ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            self.problem(key, f"{value!r} is not an IPv4 CIDR range (like 10.42.0.0/16)")
            return None
        if str(network) != value:
            self.problem(key, f"{value!r} has host bits set; the range is {network}")
            return None
        if not 16 <= network.prefixlen <= 20:
            self.problem(key, f"must be /16 to /20 (EKS pods take an address each), got {value}")
            return None
        return str(network)

    def eks_version(self, key: str, supported: tuple[str, ...]) -> str | None:
        value = self.text(key)
        parts = value.split(".") if value else []
        if value is not None and (len(parts) != 2 or not all(part.isdigit() for part in parts)):
            self.problem(key, f"must be major.minor like 1.33, got {value!r}")
            return None
        if value is not None and value not in supported:
            self.problem(
                key,
                f"is {value}, for which no cluster-autoscaler release is pinned "
                f"(its minor must match the cluster's); one of {', '.join(supported)}",
            )
            return None
        return value

    def node_label(self, key: str) -> tuple[str, str] | None:
        """A Kubernetes node label written key=value, both parts checked as the API server does."""
        value = self.text(key)
        if value is None:
            return None
        name, equals, label = value.partition("=")
        prefix, _, short = name.rpartition("/")
        if not (
            equals
            and _LABEL_NAME.match(short)
            and (not prefix or _DNS_SUBDOMAIN.match(prefix))
            and (not label or _LABEL_NAME.match(label))
        ):
            self.problem(
                key,
                f"must be a node label key=value like nvidia.com/gpu.present=true, got {value!r}",
            )
            return None
        return name, label

    def https_url(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and not value.startswith("https://"):
            self.problem(key, f"must be an https:// URL (STS fetches its keys), got {value!r}")
            return None
        return value.rstrip("/") if value else None

    def controller_config(self, key: str) -> SpilloverConfig | None:
        document = self.structured(key, dict)
        if document is None:
            return None
        try:
            return parse_config(document, source=f"{self._config.name}:{key}")
        except ConfigError as error:
            self.problems.append(str(error))
            return None
