from memras.cli import main

raise SystemExit(main())
