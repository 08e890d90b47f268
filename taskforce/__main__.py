from taskforce.cli import main

if __name__ == "__main__":  # uvicorn/multiprocessing workers import this module again
    main()
