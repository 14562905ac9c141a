"""The gateway: model calls forwarded to an upstream, their usage recorded."""

from .proxy import PROXIED_METHODS, Gateway, GatewaySettings
from .spool import Spool

__all__ = ["PROXIED_METHODS", "Gateway", "GatewaySettings", "Spool"]
