"""The local provider's build steps: mmdebstrap root filesystem, chroot provisioning,
compressed tarball. Packer's null source runs them as `python -m everbake.localbuild`."""
