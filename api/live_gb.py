"""Live view of a GB/T 28181 channel as a process of its own (api.live.gb_command starts it in
place of FFmpeg): the channel's gateway is asked for the session (INVITE over the broker), FFmpeg
turns the MPEG-PS it sends into HLS, and SIGTERM ends both and hangs up (BYE).

    python -m api.live_gb DEVICE_ID OUT_DIR [copy|h264]
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from api.live import ps_ffmpeg_args

log = logging.getLogger("api.live_gb")


async def watch(device_id: str, out: Path, video: str) -> int:
    """Until SIGTERM or FFmpeg ends: FFmpeg's exit status (0 when stopped)."""
    from gb28181.live import live_input

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with live_input(device_id) as view:
        # FFmpeg's errors go where ours do: the log the API keeps beside the segments
        proc = await asyncio.create_subprocess_exec(
            *ps_ffmpeg_args(view.url, out, video),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
        )
        ended = asyncio.create_task(proc.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 2)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            return 0
        return proc.returncode or 0
    # leaving live_input sends live_stop: the gateway hangs up (BYE)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not argv[0].isdigit() or len(argv[0]) != 20:
        print(__doc__, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    video = argv[2] if len(argv) == 3 else "copy"
    try:
        return asyncio.run(watch(argv[0], Path(argv[1]), video))
    except Exception as exc:  # the reason goes to the log the API keeps beside the segments
        log.error("live view of %s failed: %s", argv[0], exc)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
