"""Every limit of the front end, in one place (docs/language.md#limits lists them; a test holds
the two together).

The limits keep a hostile or mistaken file from running away: each one stops the work with a
located NetlangError long before time or memory run out. The figures are far above what any
real network needs (the zoo's largest uses a small fraction of each).
"""

# Source files
MAX_FILE_BYTES = 1 << 20        # one source file, read or given as text
MAX_IMPORT_DEPTH = 64           # files importing files importing files

# Elaboration
MAX_DEPTH = 200                 # nested block/def calls
MAX_STEPS = 5_000_000           # expressions evaluated and items placed while one network is elaborated
MAX_REPEAT = 100_000            # one repetition or loop
MAX_ITEMS = 1_000_000           # items of one list or tuple, characters of one string
MAX_NODES = 100_000             # layers in one network
MAX_VALUE_CALLS = 100_000       # calls one value-function call makes, itself included (a runaway recursion stops)
MAX_VALUE_WORK = 500_000        # value-function calls while one network is elaborated

# Numbers and sizes
MAX_INT = 1 << 63               # any integer a literal or arithmetic gives
MAX_DIM = 1 << 24               # any channel count, height or width
MAX_ELEMS = 1 << 40             # elements of one tensor
MAX_LAYER_WEIGHTS = 1 << 32     # parameters and buffers of one layer
MAX_NETWORK_WEIGHTS = 1 << 36   # parameters and buffers of one network
