# Device entry: start the terminal application unless boot.py chose safe mode
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

from firmware import bootguard


def _run():
    import asyncio
    import machine
    import time

    from firmware import app, log

    try:
        asyncio.run(app.main())
    except KeyboardInterrupt:
        # Ctrl-C from the console (mpremote does this): stop and leave the REPL
        # free. The watchdog cannot be stopped, so give it a day instead.
        if app.watchdog_started:
            from drivers import board

            board.watchdog(board.REPL_WATCHDOG_MS)
        print("application stopped by Ctrl-C")
        return
    except Exception as e:
        log.get("main").exc(e, "application crashed")
        bootguard.count_failure()
        time.sleep_ms(1000)
        machine.reset()


if bootguard.safe_reason is None:
    _run()
