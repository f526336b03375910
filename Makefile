# Install every xitc tool. PREFIX unset: cargo's default (~/.cargo); else PREFIX/bin.
TOOL_CRATES := bin-print-stamp bin-get-ip bin-wait-done bin-convert test-rs
PREFIX ?=
ROOT_FLAG := $(if $(PREFIX),--root $(PREFIX),)

.PHONY: install test demo
install:
	for crate in $(TOOL_CRATES); do \
		cargo install --locked $(ROOT_FLAG) --path $$crate || exit 1; \
	done

test:
	scripts/test

demo:
	scripts/demo
