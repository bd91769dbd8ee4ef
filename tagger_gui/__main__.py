from tagger_gui.cli import main

raise SystemExit(main())
