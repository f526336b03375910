# Install every xitc tool with its man page and shell completions.
# PREFIX=DIR: the binaries in DIR/bin, man pages in DIR/share/man/man1,
# completions in DIR/share/{bash-completion/completions,zsh/site-functions,
# fish/vendor_completions.d}. PREFIX unset: the binaries where cargo puts them
# (~/.cargo/bin), the rest under ~/.local/share (the XDG data home, where man,
# bash-completion and fish look for a user's own; zsh needs
# ~/.local/share/zsh/site-functions in its fpath).
TOOL_CRATES := bin-print-stamp bin-get-ip bin-wait-done bin-convert test-rs
PREFIX ?=
ROOT_FLAG := $(if $(PREFIX),--root $(PREFIX),)
SHARE := $(if $(PREFIX),$(PREFIX)/share,$(HOME)/.local/share)

.PHONY: install install-bin install-docs test demo
install: install-bin install-docs

install-bin:
	for crate in $(TOOL_CRATES); do \
		cargo install --locked $(ROOT_FLAG) --path $$crate || exit 1; \
	done

# Generated from the tools' own clap definitions (xtask/src/lib.rs).
install-docs:
	cargo xtask man $(SHARE)/man/man1
	cargo xtask completions $(SHARE)

test:
	scripts/test

demo:
	scripts/demo
