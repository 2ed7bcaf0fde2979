"""Tools that make targets run, not tests: the reliability probes (`make stress`), the tokenizer
fuzzer (`make fuzz-tokenizer`) and the text it generates, pip's sources for uv (the installs). A
package, so that the tests import what they check."""
