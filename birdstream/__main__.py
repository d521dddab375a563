from birdstream.cli import main

raise SystemExit(main())
