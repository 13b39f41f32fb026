"""Key ceremonies: back keys up under a KEK split into SLIP-39 shares, check a backup, restore."""
