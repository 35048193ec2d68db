import FuzzDriver
import FuzzEntries

// libFuzzer calls the closure once per input: Standard Format text (behind the header when it has none).
runFuzzer { data, size in
    _ = FuzzEntries.configText(input(data, size))
    return 0
}
