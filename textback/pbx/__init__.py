"""PBX protocols (sans-IO) and the thin asyncio shells that speak them."""
