from clipwire.server.cli import main

raise SystemExit(main())
