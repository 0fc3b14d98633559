from streamapp.cli import main

if __name__ == "__main__":  # not when `api --workers` spawns a process, which imports this
    main()
