import sys

from class_management_service.cli import main

sys.exit(main())
