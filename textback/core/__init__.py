"""The pure core: no IO, no clocks, no asyncio. Time is always passed in."""
