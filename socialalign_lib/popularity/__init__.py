"""Post popularity: NARRATOR (hashtag-guided multimodal regression) and shared popularity utilities."""
