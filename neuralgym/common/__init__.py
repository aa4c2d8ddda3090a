"""Layer 0: helpers shared by every layer above (device, seeding, images, files, threads,
precision, the pygame window). Nothing here imports anything else of neuralgym's."""
