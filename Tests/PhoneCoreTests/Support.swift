import ConfigFormats

enum ConfigParserShim {
    static func parse(_ xml: String) throws -> ConfigDocument {
        try ConfigParser.parse(Array(xml.utf8), file: "test.xml")
    }
}
