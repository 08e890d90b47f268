from tests.gateway.server import ctx, gateway, start_gateway

__all__ = ["ctx", "gateway", "start_gateway"]
