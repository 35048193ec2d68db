import FuzzDriver
import FuzzEntries

// libFuzzer calls the closure once per input: a configuration file as downloaded (XML or Standard Format).
runFuzzer { data, size in
    _ = FuzzEntries.configXML(input(data, size))
    return 0
}
